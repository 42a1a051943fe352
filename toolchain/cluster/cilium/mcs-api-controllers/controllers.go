// Package controllers holds what cilium-operator uses of sigs.k8s.io/mcs-api/controllers: the annotation a
// ServiceImport carries naming its derived Service (documented as such in Cilium's MCS-API guide). Nothing else;
// layerbench's clusters run no cluster mesh.
package controllers

const DerivedServiceAnnotation = "multicluster.kubernetes.io/derived-service"
