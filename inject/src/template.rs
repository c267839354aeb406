//! Identity templates: text with `{{variable}}` placeholders, parsed once when a profile is
//! compiled and rendered per pod. No loops, no conditions: the peer list is the one repeated
//! construct and is rendered by [`super::identity`].

/// A value a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// Pod name.
    Pod,
    /// Pod namespace.
    Namespace,
    /// StatefulSet ordinal plus an offset.
    Ordinal(i64),
    /// Owning StatefulSet's name.
    StatefulSet,
    /// Headless service (`spec.subdomain`).
    Service,
    /// Replica count.
    Replicas,
    /// Cluster DNS domain.
    ClusterDomain,
    /// `pod.service.namespace.svc.domain`.
    Host,
    /// Service account name.
    ServiceAccount,
    /// The rendered peer list.
    Peers,
    /// The member's role (`identity.membership.roles`): voter or learner.
    Role,
}

impl Var {
    fn parse(text: &str) -> Option<Var> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("ordinal") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Some(Var::Ordinal(0));
            }
            let (sign, digits) = rest.split_at(1);
            let n: i64 = digits.trim().parse().ok()?;
            return match sign {
                "+" => Some(Var::Ordinal(n)),
                "-" => Some(Var::Ordinal(-n)),
                _ => None,
            };
        }
        Some(match text {
            "pod" => Var::Pod,
            "namespace" => Var::Namespace,
            "statefulset" => Var::StatefulSet,
            "service" => Var::Service,
            "replicas" => Var::Replicas,
            "clusterDomain" => Var::ClusterDomain,
            "host" => Var::Host,
            "serviceAccount" => Var::ServiceAccount,
            "peers" => Var::Peers,
            "role" => Var::Role,
            _ => return None,
        })
    }

    /// The variable's name as written in templates (without the ordinal offset).
    pub fn name(self) -> &'static str {
        match self {
            Var::Pod => "pod",
            Var::Namespace => "namespace",
            Var::Ordinal(_) => "ordinal",
            Var::StatefulSet => "statefulset",
            Var::Service => "service",
            Var::Replicas => "replicas",
            Var::ClusterDomain => "clusterDomain",
            Var::Host => "host",
            Var::ServiceAccount => "serviceAccount",
            Var::Peers => "peers",
            Var::Role => "role",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    /// `{{` without `}}`.
    Unclosed,
    /// A name that is not a variable.
    UnknownVariable(String),
}

impl std::fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateProblem::Unclosed => write!(f, "\"{{{{\" without a closing \"}}}}\""),
            TemplateProblem::UnknownVariable(v) => write!(
                f,
                "unknown variable {v:?} (known: pod, namespace, ordinal, ordinal+N, statefulset, \
                 service, replicas, clusterDomain, host, serviceAccount, peers)"
            ),
        }
    }
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateProblem> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateProblem::Unclosed)?;
            let name = &after[..end];
            let var = Var::parse(name)
                .ok_or_else(|| TemplateProblem::UnknownVariable(name.trim().to_string()))?;
            pieces.push(Piece::Var(var));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    /// The template `{{peers}}`.
    pub fn peers_only() -> Template {
        Template {
            pieces: vec![Piece::Var(Var::Peers)],
        }
    }

    /// Every variable the template uses.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(*v),
            Piece::Text(_) => None,
        })
    }

    /// Renders onto `out` with `lookup`, which writes a variable's value onto the same string
    /// (`Var::Ordinal(n)`: the ordinal plus n) or says why it has none. Nothing is allocated per
    /// variable: a pod's identity renders dozens of them on every admission.
    pub fn render_into<E>(
        &self,
        out: &mut String,
        mut lookup: impl FnMut(Var, &mut String) -> Result<(), E>,
    ) -> Result<(), E> {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => lookup(*v, out)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;

    fn render(t: &str) -> String {
        let mut out = String::from(">");
        Template::parse(t)
            .unwrap()
            .render_into(&mut out, |v, out| {
                match v {
                    Var::Ordinal(n) => write!(out, "{}", 2 + n).unwrap(),
                    other => out.push_str(&other.name().to_uppercase()),
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        out
    }

    #[test]
    fn renders_text_variables_and_ordinal_offsets() {
        assert_eq!(render("id={{ordinal+1}}"), ">id=3");
        assert_eq!(render("{{ ordinal - 2 }}/{{ordinal}}"), ">0/2");
        assert_eq!(render("{{pod}}.{{service}}"), ">POD.SERVICE");
        assert_eq!(render("plain"), ">plain", "appended to what is there");
    }

    #[test]
    fn rejects_unknown_variables_and_unclosed_braces() {
        assert_eq!(
            Template::parse("{{podname}}"),
            Err(TemplateProblem::UnknownVariable("podname".into()))
        );
        assert_eq!(Template::parse("x {{pod"), Err(TemplateProblem::Unclosed));
        assert!(Template::parse("{{ordinal*2}}").is_err());
    }
}
