//! `layerbench clean --backend kube`: removes what earlier runs left in a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::time::Duration;
use serde::de::DeserializeOwned;

use super::config::{client_for, KubeOptions};
use super::orchestrate::{api_error, delete, KubeError, Whose};
use crate::backend::BackendError;

/// Removes what earlier runs left: namespaces labelled with any run id, and in
/// `options.namespace`, every object labelled so. Returns how many deletions it started.
pub async fn clean(options: &KubeOptions) -> Result<usize, BackendError> {
    let client = client_for(options).await?;
    clean_with(client, options).await
}

/// As [`clean`], on a client made elsewhere.
pub async fn clean_with(client: Client, options: &KubeOptions) -> Result<usize, BackendError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = match namespaces.list(&ListParams::default().labels(crate::RUN_ID_LABEL)).await {
        Ok(list) => list.items,
        // An account scoped to the namespace it names may not list namespaces: that one is cleaned.
        Err(kube::Error::Api(status)) if status.code == 403 && options.namespace.is_some() => vec![],
        Err(e) => return Err(BackendError::new("list layerbench namespaces", api_error("list namespaces", e))),
    };
    let mut removed = 0;
    for ns in &labelled {
        let terminating = ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            continue;
        }
        delete(&namespaces, &ns.name_any(), Whose::Any, &DeleteParams::background(), None)
            .await
            .map_err(|e| BackendError::new(format!("delete namespace {}", ns.name_any()), e))?;
        removed += 1;
    }
    if let Some(ns) = &options.namespace {
        if !labelled.iter().any(|n| n.name_any() == *ns) {
            removed += delete_labelled(&client, ns, crate::RUN_ID_LABEL, None)
                .await
                .map_err(|e| BackendError::new(format!("delete layerbench objects in namespace {ns}"), e))?;
        }
    }
    Ok(removed)
}

/// Deletes every object of the kinds the backend creates that matches `selector` in `namespace`, one by one
/// through the one delete path ([`delete`]: a 404 is already gone, a 409 already being deleted); with `wait`,
/// until each is gone. Returns how many it deleted.
pub(super) async fn delete_labelled(client: &Client, namespace: &str, selector: &str, wait: Option<Duration>) -> Result<usize, KubeError> {
    async fn kind<K>(client: &Client, namespace: &str, selector: &str, wait: Option<Duration>) -> Result<usize, KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let kind = K::kind(&Default::default()).to_string();
        let listed = api
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|e| api_error(format!("list {kind}s labelled {selector} in {namespace}"), e))?;
        // Foreground: a Deployment is gone only once its pods are, so none is replaced behind it.
        let params = DeleteParams::foreground();
        for object in &listed.items {
            delete(&api, &object.name_any(), Whose::Labelled(selector), &params, wait).await?;
        }
        Ok(listed.items.len())
    }
    // Deployments first: a pod deleted while its Deployment stands is replaced at once.
    Ok(kind::<Deployment>(client, namespace, selector, wait).await?
        + kind::<Pod>(client, namespace, selector, wait).await?
        + kind::<Service>(client, namespace, selector, wait).await?
        + kind::<ConfigMap>(client, namespace, selector, wait).await?
        + kind::<NetworkPolicy>(client, namespace, selector, wait).await?
        + kind::<PersistentVolumeClaim>(client, namespace, selector, wait).await?)
}
