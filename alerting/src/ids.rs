//! The ids of the domain as their own types, so a device id is never passed where an
//! alert config id is meant. Both are the integers the storage assigns, serialized as
//! plain numbers (in JSON, in MessagePack state blobs, in notification ids).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A monitored device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub i64);

/// An alert config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigId(pub i64);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&DeviceId(7)).unwrap(), "7");
        assert_eq!(
            serde_json::from_str::<ConfigId>("12").unwrap(),
            ConfigId(12)
        );
        assert_eq!(
            rmp_serde::to_vec(&DeviceId(7)).unwrap(),
            rmp_serde::to_vec(&7i64).unwrap(),
            "state blobs written before the newtypes still read"
        );
        assert_eq!(format!("a{}-d{}", ConfigId(3), DeviceId(9)), "a3-d9");
    }
}
