type Limits<'a> = &'a [(&'a str, &'a str)];
use super::*;
use crate::testing::PodBuilder;

fn ctx() -> RequestContext {
    RequestContext {
        translation: Translation::default(),
        largest_gpu_mib: Some(81920),
    }
}

fn all_translations() -> RequestContext {
    RequestContext {
        translation: Translation {
            gpushare: true,
            hami: true,
        },
        largest_gpu_mib: Some(81920),
    }
}

fn demand_of(
    limits: &[(&str, &str)],
    ctx: RequestContext,
) -> Result<Option<GpuDemand>, RequestError> {
    let pod = PodBuilder::new("ml", "p").container("main", limits).build();
    pod_request(&pod, ctx).map(|r| r.containers.first().map(|c| c.demand))
}

#[test]
fn native_names_give_count_memory_and_compute() {
    let cases: &[(&str, Limits<'_>, GpuDemand)] = &[
        (
            "share",
            &[
                ("tessera.dev/gpu-mem", "4096"),
                ("tessera.dev/gpu-core", "30"),
            ],
            GpuDemand {
                gpus: 1,
                mem_mib: 4096,
                mem_percent: 0,
                core_milli: 300,
            },
        ),
        (
            "count only is whole GPUs",
            &[("tessera.dev/gpu", "2")],
            GpuDemand::whole(2),
        ),
        (
            "memory only reserves no compute",
            &[("tessera.dev/gpu-mem", "2048")],
            GpuDemand {
                gpus: 1,
                mem_mib: 2048,
                mem_percent: 0,
                core_milli: 0,
            },
        ),
        (
            "two GPUs each with a share",
            &[
                ("tessera.dev/gpu", "2"),
                ("tessera.dev/gpu-core", "50"),
                ("tessera.dev/gpu-mem", "1Ki"),
            ],
            GpuDemand {
                gpus: 2,
                mem_mib: 1024,
                mem_percent: 0,
                core_milli: 500,
            },
        ),
    ];
    for (name, limits, want) in cases {
        assert_eq!(demand_of(limits, ctx()), Ok(Some(*want)), "{name}");
    }
}

#[test]
fn pods_without_gpu_names_have_no_demand() {
    assert_eq!(
        demand_of(&[("cpu", "2"), ("memory", "1Gi")], ctx()),
        Ok(None)
    );
    // Foreign names are someone else's resources unless a profile opts in.
    assert_eq!(demand_of(&[("nvidia.com/gpu", "1")], ctx()), Ok(None));
}

#[test]
fn gpushare_and_hami_names_translate_when_opted_in() {
    assert_eq!(
        demand_of(&[("aliyun.com/gpu-mem", "3")], all_translations()),
        Ok(Some(GpuDemand {
            gpus: 1,
            mem_mib: 3072,
            mem_percent: 0,
            core_milli: 0
        }))
    );
    assert_eq!(
        demand_of(
            &[
                ("nvidia.com/gpu", "1"),
                ("nvidia.com/gpumem", "3000"),
                ("nvidia.com/gpucores", "25")
            ],
            all_translations()
        ),
        Ok(Some(GpuDemand {
            gpus: 1,
            mem_mib: 3000,
            mem_percent: 0,
            core_milli: 250
        }))
    );
    let pct = demand_of(
        &[("nvidia.com/gpumem-percentage", "50")],
        all_translations(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(pct.mem_on(16384), 8192);
}

#[test]
fn invalid_requests_name_container_resource_and_value() {
    let cases: &[(&str, Limits<'_>, &str)] = &[
        (
            "core over 100",
            &[("tessera.dev/gpu-core", "150")],
            "tessera.dev/gpu-core = 150 is outside 1..=100",
        ),
        (
            "zero core",
            &[("tessera.dev/gpu-core", "0")],
            "tessera.dev/gpu-core = 0 is outside",
        ),
        (
            "zero count",
            &[("tessera.dev/gpu", "0")],
            "tessera.dev/gpu must be at least 1",
        ),
        (
            "zero memory",
            &[("tessera.dev/gpu-mem", "0")],
            "tessera.dev/gpu-mem must be at least 1",
        ),
        (
            "fractional",
            &[("tessera.dev/gpu", "500m")],
            "tessera.dev/gpu = \"500m\"",
        ),
        (
            "bigger than any GPU",
            &[("tessera.dev/gpu-mem", "90000")],
            "asks 90000 MiB per GPU, the largest GPU has 81920 MiB",
        ),
    ];
    for (name, limits, want) in cases {
        let err = demand_of(limits, ctx()).expect_err(name).to_string();
        assert!(err.contains("container \"main\""), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn synonyms_set_together_conflict() {
    let err = demand_of(
        &[("tessera.dev/gpu-mem", "1024"), ("aliyun.com/gpu-mem", "1")],
        all_translations(),
    )
    .unwrap_err();
    assert!(
        matches!(err, RequestError::Conflicting { what: "memory", .. }),
        "{err}"
    );
    let err = demand_of(
        &[
            ("nvidia.com/gpumem", "1024"),
            ("nvidia.com/gpumem-percentage", "10"),
        ],
        all_translations(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("nvidia.com/gpumem and nvidia.com/gpumem-percentage"),
        "{err}"
    );
}

#[test]
fn pod_request_sums_host_resources_and_reads_models_group_priority() {
    let pod = PodBuilder::new("mw", "zk-1")
        .container(
            "a",
            &[
                ("cpu", "500m"),
                ("memory", "1Gi"),
                ("tessera.dev/gpu-core", "10"),
            ],
        )
        .container("b", &[("cpu", "1"), ("memory", "512Mi")])
        .annotation(crate::keys::ANNOTATION_GPU_MODELS, "A100| H100")
        .statefulset("zk")
        .label(crate::keys::LABEL_QUORUM, "true")
        .label(group::LABEL_GROUP_SIZE, "3")
        .priority(7)
        .build();
    let r = pod_request(&pod, ctx()).unwrap();
    assert_eq!((r.cpu_milli, r.mem_mib), (1500, 1536));
    assert_eq!(r.models, vec!["A100", "H100"]);
    assert_eq!(
        r.group,
        Some(Group {
            key: "mw/zk".into(),
            quorum: true,
            size: Some(3)
        })
    );
    assert_eq!(r.priority, 7);
    assert_eq!(r.containers.len(), 1);
    assert!(!r.is_pass_through());
}

#[test]
fn requests_and_limits_are_compared_by_value_not_by_spelling() {
    let pod = |request: &str, limit: &str| {
        let mut pod = PodBuilder::new("ml", "p")
            .container("main", &[("tessera.dev/gpu-mem", limit)])
            .build();
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        let requests = [(
            "tessera.dev/gpu-mem".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(request.into()),
        )];
        c.resources.as_mut().unwrap().requests = Some(requests.into());
        pod
    };
    // The apiserver accepts these as equal; so does Tessera.
    assert!(pod_request(&pod("1Ki", "1024"), ctx()).is_ok());
    let err = pod_request(&pod("1Ki", "1000"), ctx())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("request \"1Ki\" differs from limit \"1000\""),
        "{err}"
    );
}

#[test]
fn init_containers_and_native_sidecars_are_read_by_the_init_rule() {
    let share = |mem: &'static str, core: &'static str| {
        [("tessera.dev/gpu-mem", mem), ("tessera.dev/gpu-core", core)]
    };
    let pod = PodBuilder::new("ml", "p")
        .sidecar("proxy", &share("1024", "10"))
        .init_container("warm", &share("8192", "60"))
        .init_container("plain", &[("cpu", "1")])
        .container("main", &share("4096", "30"))
        .build();
    let r = pod_request(&pod, ctx()).unwrap();
    let names: Vec<&str> = r.containers.iter().map(|c| c.container.as_str()).collect();
    assert_eq!(
        names,
        ["proxy", "main"],
        "the sidecar holds its share beside the app"
    );
    assert_eq!(r.init.len(), 1, "only init containers with GPUs are listed");
    assert_eq!(r.init[0].container.container, "warm");
    assert_eq!(r.init[0].sidecars_before, 1);
    // max(warm 600 + proxy 100, proxy 100 + main 300)
    assert_eq!(r.total_gpu_milli(), 700);
    assert!(r.holds_gpus());
}

#[test]
fn a_pod_whose_only_share_is_in_an_init_container_holds_gpus() {
    let pod = PodBuilder::new("ml", "p")
        .init_container("warm", &[("tessera.dev/gpu-mem", "2048")])
        .container("main", &[])
        .build();
    let r = pod_request(&pod, ctx()).unwrap();
    assert!(r.containers.is_empty());
    assert!(r.holds_gpus() && !r.is_pass_through());
}

#[test]
fn an_invalid_share_in_an_init_container_is_refused_naming_it() {
    let pod = PodBuilder::new("ml", "p")
        .init_container("warm", &[("tessera.dev/gpu-core", "150")])
        .container("main", &[])
        .build();
    let err = pod_request(&pod, ctx()).unwrap_err();
    assert!(err.to_string().contains("\"warm\""), "{err}");
}

#[test]
fn host_request_follows_the_init_rule() {
    let pod = PodBuilder::new("ml", "p")
        .sidecar("proxy", &[("cpu", "100m")])
        .init_container("migrate", &[("cpu", "2")])
        .container("main", &[("cpu", "500m")])
        .build();
    let r = pod_request(&pod, ctx()).unwrap();
    // max(migrate 2000 + proxy 100, proxy 100 + main 500)
    assert_eq!(r.cpu_milli, 2100);
}
