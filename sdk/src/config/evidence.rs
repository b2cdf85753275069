//! [`Evidence`]: the free-form notes a [`ClientConfig`](super::ClientConfig) carries (feature `serde`).

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Phase};

/// Free-form notes that travel with a [`ClientConfig`](super::ClientConfig) under its `evidence` key and that
/// the client ignores: any JSON value, kept as it was written (in a TOML file, the same value as TOML).
/// `sockpool-loadgen tune --recommend` records there what it measured (docs/TUNING.md).
///
/// Read a value with [`get`](Self::get) and a JSON Pointer (RFC 6901), or the whole of it as your own type
/// (or your `serde_json::Value`) with [`deserialize`](Self::deserialize); `Display` writes it as JSON text.
///
/// ```
/// use sockpool::config::Evidence;
///
/// let e: Evidence = r#"{"rate": 52000.5, "settings": ["pipeline=16"], "noise": {"repeat": 3}}"#.parse()?;
/// assert_eq!(e.get::<f64>("/rate"), Some(52000.5));
/// assert_eq!(e.get::<u32>("/noise/repeat"), Some(3));
/// assert_eq!(e.get::<Vec<String>>("/settings").unwrap(), ["pipeline=16"]);
/// assert_eq!(e.get::<String>("/rate"), None); // not a string
/// assert_eq!(e.get::<f64>("/missing"), None);
/// assert_eq!(e.to_string(), r#"{"noise":{"repeat":3},"rate":52000.5,"settings":["pipeline=16"]}"#);
/// # Ok::<(), sockpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(serde_json::Value);

fn config_error(what: &str, e: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Config,
        Phase::Connect,
        format!("evidence: {what}: {e}"),
    )
}

impl Evidence {
    /// Evidence from JSON text. Text that is not JSON is an [`ErrorKind::Config`] error.
    pub fn from_json(text: &str) -> Result<Evidence, Error> {
        serde_json::from_str(text)
            .map(Evidence)
            .map_err(|e| config_error("not JSON", e))
    }

    /// Evidence from anything serde serialises as JSON (a struct of your own, a map, a `serde_json::Value`).
    /// A value JSON cannot hold (a map with keys that are not strings) is an [`ErrorKind::Config`] error.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Evidence, Error> {
        serde_json::to_value(value)
            .map(Evidence)
            .map_err(|e| config_error("not representable as JSON", e))
    }

    /// The value at `pointer` (a JSON Pointer, RFC 6901: `""` is the whole, `/noise/repeat` a nested key,
    /// `/settings/0` an array element) as a `T`; `None` when there is nothing there or it is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, pointer: &str) -> Option<T> {
        T::deserialize(self.0.pointer(pointer)?).ok()
    }

    /// The whole evidence as a `T`. A value that is not a `T` is an [`ErrorKind::Config`] error.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.0).map_err(|e| config_error("not of the type asked for", e))
    }
}

/// JSON text, compact (`{:#}`: indented).
impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// [`Evidence::from_json`].
impl FromStr for Evidence {
    type Err = Error;

    fn from_str(text: &str) -> Result<Evidence, Error> {
        Evidence::from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn evidence_round_trips_and_refuses_what_json_cannot_hold() {
        let e = Evidence::from_json(r#"{"a": [1, {"b": true}], "c~d": "x"}"#).unwrap();
        assert_eq!(e.get::<bool>("/a/1/b"), Some(true));
        assert_eq!(e.get::<String>("/c~0d"), Some("x".into()));
        assert_eq!(e.get::<i64>("/a/0"), Some(1));
        assert_eq!(e.get::<i64>("a/0"), None, "a pointer starts with /");
        assert_eq!(e.to_string().parse::<Evidence>().unwrap(), e);
        let map: BTreeMap<String, serde_json::Value> = e.deserialize().unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(
            e.deserialize::<Vec<u8>>().unwrap_err().kind(),
            ErrorKind::Config
        );
        assert_eq!(
            Evidence::from_json("{nope").unwrap_err().kind(),
            ErrorKind::Config
        );
        let tuple_keys = BTreeMap::from([((1, 2), "x")]);
        assert_eq!(
            Evidence::from_serialize(&tuple_keys).unwrap_err().kind(),
            ErrorKind::Config
        );
        assert_eq!(Evidence::from_serialize(&map).unwrap(), e);
    }
}
