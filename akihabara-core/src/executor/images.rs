//! Which container images an executor runs, and the label its job
//! containers carry.

/// The label every job container carries (its value: the container's name),
/// on a local engine or a remote one: `docker ps -a --filter label=akihabara.job`.
pub const JOB_LABEL: &str = "akihabara.job";

/// Which images an executor runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagePolicy {
    allow: Vec<String>,
}

impl ImagePolicy {
    /// Any image present on the engine.
    pub fn any() -> ImagePolicy {
        ImagePolicy::default()
    }

    /// Only these images: a name (`repo:tag`, or `repo` for `repo:latest`),
    /// or a prefix ending in `*` (`registry.example.org/team/*`).
    pub fn only(allow: impl IntoIterator<Item = impl Into<String>>) -> ImagePolicy {
        ImagePolicy {
            allow: allow.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `image` may run.
    pub fn allows(&self, image: &str) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let full = with_tag(image);
        self.allow.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => with_tag(a) == full,
        })
    }
}

/// `repo` → `repo:latest`; a name with a tag or digest stays.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_matches_names_tags_and_prefixes() {
        let p = ImagePolicy::only(["busybox", "registry.example.org/team/*", "cuda:12.4"]);
        assert!(p.allows("busybox"));
        assert!(p.allows("busybox:latest"));
        assert!(!p.allows("busybox:1.36"));
        assert!(p.allows("registry.example.org/team/trainer:3"));
        assert!(!p.allows("registry.example.org/other/trainer:3"));
        assert!(p.allows("cuda:12.4"));
        assert!(!p.allows("cuda"));
        assert!(ImagePolicy::any().allows("anything:at-all"));
        assert_eq!(with_tag("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
