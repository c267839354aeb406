//! tessera-webhook: the mutating admission webhook (`/mutate`): profile source and admission glue
//! around the decisions in tessera-core. Built by the webhook issue; today it only fixes the
//! crate's place in the workspace (STYLE.md, section 1).
