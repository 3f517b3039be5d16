//! Tributary's Kubernetes API: the custom resources users write and the
//! operator and worker both read.
//!
//! Every resource lives in one API group and version, is namespaced, and
//! belongs to the `tributary` category so `kubectl get tributary` lists them
//! all.

/// The API group of every Tributary resource.
pub const GROUP: &str = "tributary.dev";

/// The API version served for every Tributary resource.
pub const VERSION: &str = "v1alpha1";

/// The `kubectl get <category>` name that lists every Tributary resource.
pub const CATEGORY: &str = "tributary";

/// `apiVersion` as written in manifests.
pub fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_joins_group_and_version() {
        assert_eq!(api_version(), "tributary.dev/v1alpha1");
    }
}
