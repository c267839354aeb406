//! tessera-extender: the kube-scheduler extender (`/filter`, `/prioritize`, `/bind`, `/preempt`),
//! its watchers and the Binding call, around the decisions in tessera-core. Built by the extender
//! issue; today it only fixes the crate's place in the workspace (STYLE.md, section 1).
