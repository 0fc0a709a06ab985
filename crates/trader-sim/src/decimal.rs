//! Decimals on input as Alpaca accepts them: a JSON number (`"qty": 0.01`,
//! what Alpaca's official SDKs send) or a string holding one (`"qty":
//! "0.01"`, what the API documents and the `apca` crate sends). Responses keep
//! writing decimals as strings (`wire.rs`).
//!
//! [`Decimal`] is the one serde helper; [`field`] reads one field of a
//! request object and names it in the 422 when it is not what it should be.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use crate::broker::{ApiError, CODE_INVALID};

/// A finite decimal sent as a JSON number or as a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decimal(pub(crate) f64);

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal, as a number or a string")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if v.is_finite() {
            Ok(Decimal(v))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }

    #[allow(clippy::cast_precision_loss)] // quantities and prices, far below 2^53
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal(v as f64))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        match v.trim().parse::<f64>() {
            // "NaN", "inf" and the like parse as f64 but are no decimals.
            Ok(x) if x.is_finite() && !v.trim().is_empty() => Ok(Decimal(x)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }
}

/// Field `name` of a request object: `None` when absent or null, 422 naming
/// the field when it does not deserialize as `T`.
pub(crate) fn field<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| ApiError::new(422, CODE_INVALID, format!("invalid {name} {v}: {e}"))),
    }
}

/// Field `name` as a decimal (number or string).
pub(crate) fn decimal(obj: &Map<String, Value>, name: &str) -> Result<Option<f64>, ApiError> {
    Ok(field::<Decimal>(obj, name)?.map(|d| d.0))
}

/// A request body as a JSON object (422 otherwise).
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::new(
            422,
            CODE_INVALID,
            format!("the request body must be a JSON object, not {other}"),
        )),
        Err(e) => Err(ApiError::new(
            422,
            CODE_INVALID,
            format!("the request body is not JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp)]

    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn numbers_and_strings_are_both_decimals() {
        let m = obj(json!({
            "notional": 1000.0, "qty": 0.01, "whole": 3,
            "s_notional": "1000.0", "s_qty": "0.01", "s_whole": "3", "null": null
        }));
        assert_eq!(decimal(&m, "notional").unwrap(), Some(1000.0));
        assert_eq!(decimal(&m, "qty").unwrap(), Some(0.01));
        assert_eq!(decimal(&m, "whole").unwrap(), Some(3.0));
        assert_eq!(decimal(&m, "s_notional").unwrap(), Some(1000.0));
        assert_eq!(decimal(&m, "s_qty").unwrap(), Some(0.01));
        assert_eq!(decimal(&m, "s_whole").unwrap(), Some(3.0));
        assert_eq!(decimal(&m, "null").unwrap(), None);
        assert_eq!(decimal(&m, "absent").unwrap(), None);
        let d: Decimal = serde_json::from_str("\"2.5\"").unwrap();
        assert_eq!(d, Decimal(2.5));
        let d: Decimal = serde_json::from_str("2.5").unwrap();
        assert_eq!(d, Decimal(2.5));
    }

    #[test]
    fn a_bad_decimal_is_422_naming_the_field() {
        let m = obj(json!({
            "qty": "abc", "notional": true, "limit_price": "NaN", "stop_price": "",
            "x": [1], "y": "inf"
        }));
        for name in ["qty", "notional", "limit_price", "stop_price", "x", "y"] {
            let e = decimal(&m, name).unwrap_err();
            assert_eq!(e.status, 422, "{name}");
            assert!(e.message.contains(name), "{name}: {}", e.message);
            assert!(e.message.contains("a decimal"), "{name}: {}", e.message);
        }
    }

    #[test]
    fn a_body_that_is_no_object_is_422() {
        assert_eq!(object(b"[1]").unwrap_err().status, 422);
        assert_eq!(object(b"{").unwrap_err().status, 422);
        assert!(object(br#"{"qty": 1}"#).unwrap().contains_key("qty"));
    }
}
