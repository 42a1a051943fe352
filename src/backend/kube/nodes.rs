//! The cluster's nodes, checked before a run: a schedulable node that is not Ready would leave the job pods
//! placed on it Pending until their limit, so the run refuses at once and names it.

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};

use super::orchestrate::api_error;
use crate::backend::BackendError;

/// Lists the nodes and refuses a run while a schedulable one is not Ready. An account that may not list
/// nodes (they are cluster-scoped; a namespaced CI account often cannot) skips the check.
pub(super) async fn check(client: &Client, limit: std::time::Duration) -> Result<(), BackendError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let action = "check the cluster's nodes";
    let list = match tokio::time::timeout(limit, nodes.list(&ListParams::default())).await {
        Ok(Ok(list)) => list,
        Ok(Err(kube::Error::Api(status))) if status.code == 403 => return Ok(()),
        Ok(Err(e @ kube::Error::Api(_))) => return Err(BackendError::new(action, api_error("list nodes", e))),
        Ok(Err(e)) => {
            let why = api_error("list nodes", e);
            let hint = "is the cluster running? `kubectl cluster-info` checks the same context";
            return Err(BackendError::new("reach the Kubernetes API server", format!("{why}; {hint}")));
        }
        Err(_) => {
            let why = format!("no answer within {} s; check `kubectl cluster-info` for this context", limit.as_secs());
            return Err(BackendError::new("reach the Kubernetes API server", why));
        }
    };
    match unready(&list.items).as_slice() {
        [] => Ok(()),
        bad => Err(BackendError::new(
            action,
            format!(
                "{} not Ready: {}; jobs placed there would wait until their limit. `kubectl describe node NAME` says why; \
                 fix it, or cordon it (`kubectl cordon NAME`) so that nothing is scheduled there",
                if bad.len() == 1 { "a node is" } else { "nodes are" },
                bad.join("; ")
            ),
        )),
    }
}

/// "layerbench-worker (KubeletNotReady: container runtime network not ready)" for each schedulable node whose
/// Ready condition is not True; cordoned nodes are left out, as the scheduler leaves them.
pub fn unready(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
        .filter_map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
            match conditions.and_then(|c| c.iter().find(|c| c.type_ == "Ready")) {
                Some(c) if c.status == "True" => None,
                Some(c) => {
                    let why = [c.reason.as_deref(), c.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
                    Some(if why.is_empty() { format!("{name} (Ready is {})", c.status) } else { format!("{name} ({why})") })
                }
                None => Some(format!("{name} (no Ready condition yet)")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: Option<(&str, &str)>, cordoned: bool) -> Node {
        let conditions: Vec<serde_json::Value> = ready
            .map(|(status, message)| serde_json::json!({"type": "Ready", "status": status, "reason": "KubeletNotReady", "message": message}))
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn a_not_ready_worker_is_named_with_its_reason_and_a_cordoned_one_is_left_out() {
        let nodes = [
            node("layerbench-control-plane", Some(("True", "kubelet is posting ready status")), false),
            node("layerbench-worker", Some(("False", "container runtime network not ready")), false),
            node("layerbench-worker2", None, false),
            node("layerbench-worker3", Some(("Unknown", "Kubelet stopped posting node status.")), true),
        ];
        assert_eq!(
            unready(&nodes),
            [
                "layerbench-worker (KubeletNotReady: container runtime network not ready)",
                "layerbench-worker2 (no Ready condition yet)",
            ]
        );
        assert!(unready(&nodes[..1]).is_empty());
    }
}
