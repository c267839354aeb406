//! Annotations a pod may not bring to its own creation: the binder's record of a GPU
//! assignment. The extender writes them in the Binding, the device plugin updates them; a pod
//! created with them would have the extender count a share it never assigned.

use tessera_kernel::keys::BINDER_ANNOTATIONS;

use crate::view::PodView;

/// Why a pod create is refused: it carries annotations only Tessera's binder writes.
pub fn forged_annotations(pod: &PodView<'_>) -> Option<String> {
    let forged: Vec<&str> = BINDER_ANNOTATIONS
        .into_iter()
        .filter(|k| pod.annotation(k).is_some())
        .collect();
    (!forged.is_empty()).then(|| {
        format!(
            "the pod is created with {}, which only Tessera's extender and device plugin write \
             (at binding); remove it from the pod template",
            forged.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(annotations: serde_json::Value) -> String {
        serde_json::json!({"metadata": {"name": "p", "annotations": annotations},
                           "spec": {"containers": []}})
        .to_string()
    }

    #[test]
    fn a_forged_assignment_is_named_and_other_annotations_pass() {
        let text = view(serde_json::json!({
            "tessera.dev/gpu-assignment": "{}", "tessera.dev/bind-phase": "allocated",
            "example.com/x": "y"}));
        let pod: PodView<'_> = serde_json::from_str(&text).unwrap();
        let why = forged_annotations(&pod).unwrap();
        assert!(
            why.contains("tessera.dev/gpu-assignment, tessera.dev/bind-phase"),
            "{why}"
        );
        let text = view(serde_json::json!({"tessera.dev/inject": "mesh"}));
        let pod: PodView<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(forged_annotations(&pod), None);
    }
}
