//! Profiles from a YAML file (`--profiles FILE`): a stream of `InjectionProfile` documents in the
//! CRD's schema. A document that is not a valid profile is reported and skipped; the others load.
//! The file is reloaded when its content changes ([`reload`]); a file that no longer parses as
//! YAML keeps the profiles being served.

use serde::Deserialize;
use tessera_inject::{InjectionProfileSpec, Profile, ProfileError, compile_all};
use thiserror::Error;

/// The API version profiles are written in.
pub const API_VERSION: &str = "tessera.dev/v1alpha1";
/// The kind of a profile document.
pub const KIND: &str = "InjectionProfile";

mod reload;

pub(crate) use reload::log_loaded;
pub use reload::{FileError, FilePoll, Step, read_file, reload};

/// Why one document of a profiles file was skipped.
#[derive(Debug, Error)]
pub enum DocumentError {
    /// Not YAML: this document and every later one are unreadable.
    #[error("document {index}: {source}")]
    Syntax {
        /// 0-based document index.
        index: usize,
        /// Decoder failure (names the line).
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// Not YAML of the profile's shape.
    #[error("document {index}: {source}")]
    Parse {
        /// 0-based document index.
        index: usize,
        /// Decoder failure (names the field and line).
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The spec does not have the profile's shape.
    #[error("document {index}: profile {name:?}: spec: {source}")]
    Spec {
        /// 0-based document index.
        index: usize,
        /// Profile name.
        name: String,
        /// Decoder failure (names the field).
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// Another apiVersion or kind.
    #[error(
        "document {index}: apiVersion {api_version:?}, kind {kind:?}: expected {API_VERSION} {KIND}"
    )]
    Kind {
        /// 0-based document index.
        index: usize,
        /// apiVersion found.
        api_version: String,
        /// kind found.
        kind: String,
    },
    /// Valid YAML, invalid profile.
    #[error("document {index}: {source}")]
    Profile {
        /// 0-based document index.
        index: usize,
        /// What is wrong.
        #[source]
        source: ProfileError,
    },
}

/// The profiles that loaded and the documents that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid profiles, by name.
    pub profiles: Vec<Profile>,
    /// Skipped documents.
    pub errors: Vec<DocumentError>,
}

impl Loaded {
    /// The syntax error that cut the file short, if any: the file as a whole did not parse.
    pub fn syntax_error(&self) -> Option<&DocumentError> {
        self.errors
            .iter()
            .find(|e| matches!(e, DocumentError::Syntax { .. }))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: serde_yaml_ng::Value,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

/// Parses a profiles file's text.
pub fn parse(text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let mut specs = Vec::new();
    let mut index_of = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml_ng::Value::deserialize(doc) {
            Ok(serde_yaml_ng::Value::Null) => continue,
            Ok(v) => v,
            Err(source) => {
                loaded.errors.push(DocumentError::Syntax { index, source });
                // A syntax error ends the stream: later documents cannot be located reliably.
                break;
            }
        };
        let doc: Document = match serde_yaml_ng::from_value(value) {
            Ok(d) => d,
            Err(source) => {
                loaded.errors.push(DocumentError::Parse { index, source });
                continue;
            }
        };
        if doc.api_version != API_VERSION || doc.kind != KIND {
            loaded.errors.push(DocumentError::Kind {
                index,
                api_version: doc.api_version,
                kind: doc.kind,
            });
            continue;
        }
        let name = doc.metadata.name;
        let spec = match doc.spec {
            serde_yaml_ng::Value::Null => Ok(InjectionProfileSpec::default()),
            v => serde_yaml_ng::from_value(v),
        };
        match spec {
            Ok(spec) => {
                index_of.push((name.clone(), index));
                specs.push((name, spec));
            }
            Err(source) => loaded.errors.push(DocumentError::Spec {
                index,
                name,
                source,
            }),
        }
    }
    let (profiles, errors) = compile_all(specs);
    loaded.profiles = profiles;
    for source in errors {
        let index = index_of
            .iter()
            .find(|(n, _)| *n == source.profile)
            .map_or(0, |(_, i)| *i);
        loaded.errors.push(DocumentError::Profile { index, source });
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_valid_documents_and_reports_the_others() {
        let text = "\
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: good}
spec: {selector: {}}
---
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: typo}
spec: {selectr: {}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: bad}
spec: {identity: {env: {X: '{{nope}}'}}}
";
        let loaded = parse(text);
        let names: Vec<_> = loaded.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["good"]);
        let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("document 1: profile \"typo\": spec: unknown field `selectr`"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("apiVersion \"v1\", kind \"ConfigMap\""),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("document 3: profile \"bad\": spec.identity.env[X]"),
            "{}",
            errors[2]
        );
        assert!(loaded.syntax_error().is_none());
    }

    #[test]
    fn a_syntax_error_ends_the_stream_and_is_told_apart() {
        let text = "\
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: first}
---
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: [broken
";
        let loaded = parse(text);
        assert_eq!(loaded.profiles.len(), 1);
        let e = loaded.syntax_error().unwrap();
        assert!(e.to_string().starts_with("document 1: "), "{e}");
    }
}
