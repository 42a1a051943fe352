// Stands in for sigs.k8s.io/mcs-api/controllers, which the Go module proxy does not serve (it lists no version and
// refuses v0.5.2): cilium-operator imports it only for one annotation name. See controllers.go.
module sigs.k8s.io/mcs-api/controllers

go 1.21
