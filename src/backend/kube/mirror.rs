//! The run's mirror on the cluster, as on the docker backend: a Distribution registry that every daemon and
//! builder uses as its Docker Hub mirror (and that the Dockerfile they are given names for other registries'
//! bases, see `toolchain::bases`), seeded once per run with the scenario's base images from the local engine
//! (through a port-forward) and then restarted read-only, so no build can change what another one pulls. Its blobs live on a volume claim, which survives that restart. `--hub-mirror HOST:PORT`
//! names an existing mirror instead (a pull-through cache the cluster already has), `--hub-mirror none`
//! lets the builders pull from Docker Hub.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, Service, Volume,
};

use super::config::KubeImages;
use super::manifests::{self, RunMeta};

pub use super::config::{HubMirror, MIRROR_HOST};

pub const MIRROR_NAME: &str = "mirror";
pub const MIRROR_PVC: &str = "mirror-data";
pub const MIRROR_CONFIG: &str = "mirror-config";
/// The component label of the mirror's objects.
pub const COMPONENT: &str = "mirror";
/// The base images of a scenario are a few hundred MB.
const MIRROR_STORAGE: &str = "5Gi";
const WRITABLE_CONFIG: &str = "registry.yml";
const READ_ONLY_CONFIG: &str = "registry-readonly.yml";

/// The mirror's objects; `read_only` picks the configuration its registry starts with.
pub struct Mirror {
    pub config: ConfigMap,
    pub claim: PersistentVolumeClaim,
    pub deployment: Deployment,
    pub service: Service,
}

pub fn objects(run: &RunMeta, images: &KubeImages, storage_class: Option<&str>, read_only: bool) -> Mirror {
    let config_dir = Path::new(crate::registry::CONFIG_PATH).parent().unwrap_or(Path::new("/")).to_string_lossy().to_string();
    let config = ConfigMap {
        metadata: run.meta(MIRROR_CONFIG, COMPONENT),
        data: Some(BTreeMap::from([
            (WRITABLE_CONFIG.to_string(), crate::registry::config_yaml()),
            (READ_ONLY_CONFIG.to_string(), crate::registry::read_only_config_yaml()),
        ])),
        ..Default::default()
    };
    let file = if read_only { READ_ONLY_CONFIG } else { WRITABLE_CONFIG };
    let mut container = manifests::registry_container(
        MIRROR_NAME,
        images,
        &[manifests::mount("mirror-data", crate::registry::STORAGE_ROOT), manifests::mount("mirror-config", &config_dir)],
    );
    // Both registry images take a config file as their only argument.
    container.args = Some(vec![format!("{config_dir}/{file}")]);
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "mirror-data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: MIRROR_PVC.into(), read_only: None }),
                ..Default::default()
            },
            Volume {
                name: "mirror-config".into(),
                config_map: Some(ConfigMapVolumeSource { name: MIRROR_CONFIG.into(), ..Default::default() }),
                ..Default::default()
            },
        ]),
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    };
    // The read-only pod is told apart from the seeding one by its "iteration" label (0 seeding, 1 serving).
    let mut deployment = manifests::single_replica(run, MIRROR_NAME, COMPONENT, None, u32::from(read_only), pod);
    if let Some(spec) = deployment.spec.as_mut() {
        // The claim is ReadWriteOnce: the seeding pod must be gone before the serving one mounts it.
        spec.strategy = Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() });
    }
    Mirror {
        config,
        claim: manifests::claim(run, MIRROR_PVC, COMPONENT, storage_class, MIRROR_STORAGE),
        deployment,
        service: manifests::service(run, MIRROR_NAME, COMPONENT, None, manifests::REGISTRY_PORT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunMeta {
        RunMeta { run_id: "r1".into(), namespace: "layerbench-r1".into(), scenario: "small".into(), apparmor: Default::default() }
    }

    #[test]
    fn the_serving_mirror_runs_the_read_only_configuration_on_the_seeded_claim() {
        let mirror = objects(&run(), &KubeImages::default(), None, true);
        let spec = mirror.deployment.spec.as_ref().unwrap();
        assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
        let pod = spec.template.spec.as_ref().unwrap();
        let args = pod.containers[0].args.as_ref().unwrap();
        assert!(args[0].ends_with(READ_ONLY_CONFIG), "{args:?}");
        let config = mirror.config.data.as_ref().unwrap();
        assert!(config[READ_ONLY_CONFIG].contains("readonly:\n      enabled: true"));
        assert!(!config[WRITABLE_CONFIG].contains("readonly"));
        let claim = pod.volumes.as_ref().unwrap()[0].persistent_volume_claim.as_ref().unwrap();
        assert_eq!(claim.claim_name, MIRROR_PVC);
        let seeding = objects(&run(), &KubeImages::default(), None, false);
        let args = &seeding.deployment.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
        assert!(args[0].ends_with(WRITABLE_CONFIG));
    }

    #[test]
    fn hub_mirror_flag_values() {
        assert_eq!(HubMirror::parse("none"), Ok(HubMirror::Off));
        assert_eq!(HubMirror::parse("10.0.0.5:5000"), Ok(HubMirror::External("10.0.0.5:5000".into())));
        assert_eq!(HubMirror::parse("mirror.ci.example:443"), Ok(HubMirror::External("mirror.ci.example:443".into())));
        // Each of these would be written into a dockerd flag or a registries.conf line as it is.
        for hostile in ["http://10.0.0.5:5000", "a\"b:5000", "a b:5000", "host", "host:", "host:0", "host:65536", ":5000", "-a:5000", "a..b:5000", "a:5000/x", "a:+1", "", "a\nb:5000"] {
            let error = HubMirror::parse(hostile).unwrap_err().to_string();
            assert!(error.starts_with("--hub-mirror `"), "{hostile:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        assert_eq!(HubMirror::Deploy.address().as_deref(), Some(MIRROR_HOST));
        assert_eq!(HubMirror::Off.address(), None);
    }
}
