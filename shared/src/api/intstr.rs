//! Kubernetes `intstr.IntOrString`: a field that holds either a 32-bit integer or a string.
//!
//! It appears where Kubernetes accepts a number or a name (`targetPort: 8080` or
//! `targetPort: http`) and a count or a percentage (`maxUnavailable: 1` or
//! `maxUnavailable: 25%`).
//!
//! In JSON and YAML it is the bare integer or string, as in Kubernetes. Two details follow
//! Kubernetes' YAML path (which converts YAML to JSON through Go's `float64`): a number
//! with an integral value such as `1.0` or `1e3` is accepted as that integer, and a null is
//! `Int(0)`. A fractional number or an integer outside the `i32` range is an error. In
//! non-self-describing formats (postcard) it is an ordinary two-variant enum.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An `int32` or a string, as Kubernetes' `intstr.IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntOrString {
    /// An integer, e.g. a port number or a count.
    Int(i32),
    /// A string, e.g. a port name or a percentage such as `"25%"`.
    String(String),
}

/// Why an [`IntOrString`] could not be resolved to a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntOrStringError {
    /// A string that does not end in `%`.
    #[error(
        "invalid value for IntOrString: {value:?} is not a percentage \
         (expected an integer or a string such as \"25%\")"
    )]
    NotAPercentage {
        /// The string.
        value: String,
    },
    /// A string ending in `%` whose number part is not an integer.
    #[error("invalid value for IntOrString: {value:?} is not a valid percentage: {reason}")]
    InvalidPercentage {
        /// The string.
        value: String,
        /// What was wrong with the number before the `%`.
        reason: String,
    },
    /// The scaled result does not fit in an `i32`.
    #[error(
        "invalid value for IntOrString: {value:?} of {total} is {result}, \
         which is out of range for a 32-bit integer"
    )]
    OutOfRange {
        /// The percentage string.
        value: String,
        /// The total it was applied to.
        total: i32,
        /// The out-of-range result.
        result: i128,
    },
}

impl IntOrString {
    /// Kubernetes' `intstr.Parse`: an `Int` if `s` is a decimal `i32` (optionally signed),
    /// otherwise a `String`. `"8080"` → `Int(8080)`, `"http"` → `String("http")`.
    pub fn parse(s: &str) -> Self {
        match s.parse::<i32>() {
            Ok(i) => IntOrString::Int(i),
            Err(_) => IntOrString::String(s.to_owned()),
        }
    }

    /// The integer, if this is an `Int`.
    pub fn as_int(&self) -> Option<i32> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::String(_) => None,
        }
    }

    /// The string, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            IntOrString::Int(_) => None,
            IntOrString::String(s) => Some(s),
        }
    }

    /// Whether this is a string ending in `%`, which [`resolve_percent`](Self::resolve_percent)
    /// treats as a percentage (the number before the `%` may still be invalid).
    pub fn is_percent(&self) -> bool {
        matches!(self, IntOrString::String(s) if s.ends_with('%'))
    }

    /// Kubernetes' `GetScaledValueFromIntOrPercent`: an `Int` is returned as is; a
    /// percentage string `"<int>%"` is that percent of `total`, rounded up if `round_up`
    /// and down otherwise (`"25%"` of 10 is 3 rounded up, 2 rounded down). Any other string
    /// is an error, as is a result outside the `i32` range.
    pub fn resolve_percent(&self, total: i32, round_up: bool) -> Result<i32, IntOrStringError> {
        let text = match self {
            IntOrString::Int(i) => return Ok(*i),
            IntOrString::String(s) => s,
        };
        let Some(number) = text.strip_suffix('%') else {
            return Err(IntOrStringError::NotAPercentage {
                value: text.clone(),
            });
        };
        // Go's strconv.Atoi and Rust's i64 parsing accept the same syntax: an optional
        // sign and ASCII digits, nothing else.
        let percent: i64 = number.parse().map_err(|e: std::num::ParseIntError| {
            IntOrStringError::InvalidPercentage {
                value: text.clone(),
                reason: e.to_string(),
            }
        })?;
        // Exact, where Kubernetes computes in float64; they agree for any sane input.
        let scaled = i128::from(percent) * i128::from(total);
        let result = if round_up {
            -(-scaled).div_euclid(100)
        } else {
            scaled.div_euclid(100)
        };
        i32::try_from(result).map_err(|_| IntOrStringError::OutOfRange {
            value: text.clone(),
            total,
            result,
        })
    }
}

impl Default for IntOrString {
    /// `Int(0)`, Kubernetes' zero value.
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    /// The string, or the integer in decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => fmt::Display::fmt(i, f),
            IntOrString::String(s) => f.pad(s),
        }
    }
}

impl From<i32> for IntOrString {
    fn from(i: i32) -> Self {
        IntOrString::Int(i)
    }
}

impl From<String> for IntOrString {
    fn from(s: String) -> Self {
        IntOrString::String(s)
    }
}

impl From<&str> for IntOrString {
    fn from(s: &str) -> Self {
        IntOrString::String(s.to_owned())
    }
}

/// The binary (non-self-describing) representation: a plain enum.
#[derive(Serialize)]
#[serde(rename = "IntOrString")]
enum BinaryRef<'a> {
    Int(i32),
    String(&'a str),
}

/// The binary (non-self-describing) representation: a plain enum.
#[derive(Deserialize)]
#[serde(rename = "IntOrString")]
enum BinaryOwned {
    Int(i32),
    String(String),
}

impl Serialize for IntOrString {
    /// The bare integer or string (an enum in non-self-describing formats).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self, serializer.is_human_readable()) {
            (IntOrString::Int(i), true) => serializer.serialize_i32(*i),
            (IntOrString::String(s), true) => serializer.serialize_str(s),
            (IntOrString::Int(i), false) => BinaryRef::Int(*i).serialize(serializer),
            (IntOrString::String(s), false) => BinaryRef::String(s).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    /// An integer or a string; see the module documentation for floats and null.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(IntOrStringVisitor)
        } else {
            Ok(match BinaryOwned::deserialize(deserializer)? {
                BinaryOwned::Int(i) => IntOrString::Int(i),
                BinaryOwned::String(s) => IntOrString::String(s),
            })
        }
    }
}

struct IntOrStringVisitor;

impl IntOrStringVisitor {
    fn int<E: de::Error, T: Copy + fmt::Display + TryInto<i32>>(v: T) -> Result<IntOrString, E> {
        v.try_into().map(IntOrString::Int).map_err(|_| {
            E::custom(format_args!(
                "invalid IntOrString: the integer {v} is out of range for a 32-bit integer \
                 ({} to {})",
                i32::MIN,
                i32::MAX
            ))
        })
    }
}

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        Self::int(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        Self::int(v)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<IntOrString, E> {
        Self::int(v)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<IntOrString, E> {
        Self::int(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(format_args!(
                "invalid IntOrString: {v} is not an integer (write an integer, \
                 or quote it to make it a string)"
            )));
        }
        if v < f64::from(i32::MIN) || v > f64::from(i32::MAX) {
            return Err(E::custom(format_args!(
                "invalid IntOrString: the integer {v} is out of range for a 32-bit integer \
                 ({} to {})",
                i32::MIN,
                i32::MAX
            )));
        }
        // In range and integral: the conversion is exact.
        Ok(IntOrString::Int(v as i32))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<IntOrString, E> {
        Ok(IntOrString::Int(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<IntOrString, E> {
        Ok(IntOrString::Int(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.to_owned())
    }

    #[test]
    fn parse_like_kubernetes() {
        // intstr_test.go TestParse.
        assert_eq!(IntOrString::parse("0"), IntOrString::Int(0));
        assert_eq!(IntOrString::parse("2147483647"), IntOrString::Int(i32::MAX));
        assert_eq!(
            IntOrString::parse("-2147483648"),
            IntOrString::Int(i32::MIN)
        );
        assert_eq!(IntOrString::parse("2147483648"), s("2147483648"));
        assert_eq!(IntOrString::parse("-2147483649"), s("-2147483649"));
        assert_eq!(
            IntOrString::parse("9223372036854775808"),
            s("9223372036854775808")
        );
        // Ours.
        assert_eq!(IntOrString::parse("http"), s("http"));
        assert_eq!(IntOrString::parse("25%"), s("25%"));
        assert_eq!(IntOrString::parse(""), s(""));
        assert_eq!(IntOrString::parse("+7"), IntOrString::Int(7));
    }

    #[test]
    fn accessors_and_conversions() {
        assert_eq!(IntOrString::Int(8080).as_int(), Some(8080));
        assert_eq!(s("http").as_int(), None);
        assert_eq!(s("http").as_str(), Some("http"));
        assert_eq!(IntOrString::Int(1).as_str(), None);
        assert_eq!(IntOrString::from(3), IntOrString::Int(3));
        assert_eq!(IntOrString::from("x"), s("x"));
        assert_eq!(IntOrString::from(String::from("x")), s("x"));
        assert_eq!(IntOrString::default(), IntOrString::Int(0));
        assert_eq!(IntOrString::Int(-5).to_string(), "-5");
        assert_eq!(s("25%").to_string(), "25%");
        assert_eq!(
            format!("{:>4}|{:>4}", IntOrString::Int(7), s("ab")),
            "   7|  ab"
        );
    }

    #[test]
    fn is_percent() {
        assert!(s("25%").is_percent());
        assert!(s("%").is_percent());
        assert!(!s("25").is_percent());
        assert!(!s("http").is_percent());
        assert!(!IntOrString::Int(25).is_percent());
    }

    #[test]
    fn resolve_percent_like_kubernetes() {
        // intstr_test.go TestGetIntFromIntOrPercent.
        assert_eq!(IntOrString::Int(123).resolve_percent(0, false), Ok(123));
        assert_eq!(s("90%").resolve_percent(100, true), Ok(90));
        assert_eq!(s("90%").resolve_percent(95, true), Ok(86));
        assert_eq!(s("90%").resolve_percent(95, false), Ok(85));
        for bad in ["%", "90#", "#%", "90"] {
            assert!(s(bad).resolve_percent(0, false).is_err(), "{bad:?}");
        }
        // intstr_test.go TestGetIntFromIntOrPercentSafely's invalid strings.
        for bad in ["a%", "a", "40#", "40%%"] {
            assert!(s(bad).resolve_percent(10, true).is_err(), "{bad:?}");
        }
        // The classic rolling-update defaults.
        assert_eq!(s("25%").resolve_percent(10, true), Ok(3));
        assert_eq!(s("25%").resolve_percent(10, false), Ok(2));
        assert_eq!(s("25%").resolve_percent(4, false), Ok(1));
        assert_eq!(s("0%").resolve_percent(10, true), Ok(0));
        assert_eq!(s("100%").resolve_percent(7, false), Ok(7));
        assert_eq!(s("150%").resolve_percent(10, false), Ok(15));
        // Atoi accepts a sign; floor and ceil go the right way for negatives.
        assert_eq!(s("+50%").resolve_percent(3, true), Ok(2));
        assert_eq!(s("-50%").resolve_percent(3, true), Ok(-1));
        assert_eq!(s("-50%").resolve_percent(3, false), Ok(-2));
        assert_eq!(s("1%").resolve_percent(-1, false), Ok(-1));
        assert_eq!(s("1%").resolve_percent(-1, true), Ok(0));
    }

    #[test]
    fn resolve_percent_errors_are_clear() {
        let err = s("90").resolve_percent(10, true).unwrap_err();
        assert_eq!(err, IntOrStringError::NotAPercentage { value: "90".into() });
        assert!(
            err.to_string().contains("\"90\" is not a percentage"),
            "{err}"
        );
        let err = s("a%").resolve_percent(10, true).unwrap_err();
        assert!(
            matches!(&err, IntOrStringError::InvalidPercentage { value, .. } if value == "a%"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("\"a%\" is not a valid percentage"),
            "{err}"
        );
        let err = s(" 5%").resolve_percent(10, true).unwrap_err();
        assert!(matches!(err, IntOrStringError::InvalidPercentage { .. }));
        let err = s("1000%").resolve_percent(i32::MAX, false).unwrap_err();
        assert_eq!(
            err,
            IntOrStringError::OutOfRange {
                value: "1000%".into(),
                total: i32::MAX,
                result: i128::from(i32::MAX) * 10,
            }
        );
        assert!(s("99999999999999999999%").resolve_percent(1, true).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Strategy {
        max_unavailable: IntOrString,
        max_surge: IntOrString,
        #[serde(default)]
        target_port: Option<IntOrString>,
    }

    #[test]
    fn yaml_round_trip() {
        let yaml = "maxUnavailable: 25%\nmaxSurge: 1\ntargetPort: http\n";
        let strategy: Strategy = serde_yaml_ng::from_str(yaml).expect("valid");
        assert_eq!(strategy.max_unavailable, s("25%"));
        assert_eq!(strategy.max_surge, IntOrString::Int(1));
        assert_eq!(strategy.target_port, Some(s("http")));
        assert_eq!(
            serde_yaml_ng::to_string(&strategy).expect("serializes"),
            yaml
        );

        // A quoted number stays a string, as in Kubernetes.
        let strategy: Strategy =
            serde_yaml_ng::from_str("maxUnavailable: '8080'\nmaxSurge: -3\n").expect("valid");
        assert_eq!(strategy.max_unavailable, s("8080"));
        assert_eq!(strategy.max_surge, IntOrString::Int(-3));
        assert_eq!(strategy.target_port, None);
        let out = serde_yaml_ng::to_string(&strategy).expect("serializes");
        assert_eq!(
            out,
            "maxUnavailable: '8080'\nmaxSurge: -3\ntargetPort: null\n"
        );
        assert_eq!(
            serde_yaml_ng::from_str::<Strategy>(&out).expect("round trip"),
            strategy
        );
    }

    #[test]
    fn yaml_numbers_follow_kubernetes() {
        let parse = |v: &str| {
            serde_yaml_ng::from_str::<Strategy>(&format!("maxUnavailable: {v}\nmaxSurge: 0\n"))
                .map(|st| st.max_unavailable)
        };
        assert_eq!(parse("1.0").expect("integral float"), IntOrString::Int(1));
        assert_eq!(
            parse("2147483647").expect("max"),
            IntOrString::Int(i32::MAX)
        );
        assert_eq!(parse("~").expect("null"), IntOrString::Int(0));
        let err = parse("1.5").unwrap_err().to_string();
        assert!(err.contains("1.5 is not an integer"), "{err}");
        let err = parse("2147483648").unwrap_err().to_string();
        assert!(err.contains("2147483648 is out of range"), "{err}");
        let err = parse("-2147483649").unwrap_err().to_string();
        assert!(err.contains("-2147483649 is out of range"), "{err}");
        let err = parse("1e10").unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        let err = parse(".inf").unwrap_err().to_string();
        assert!(err.contains("not an integer"), "{err}");
        let err = parse("true").unwrap_err().to_string();
        assert!(err.contains("an integer or a string"), "{err}");
    }

    #[test]
    fn json_round_trip() {
        let v: IntOrString = serde_json::from_str("8080").expect("int");
        assert_eq!(v, IntOrString::Int(8080));
        assert_eq!(serde_json::to_string(&v).expect("serializes"), "8080");
        let v: IntOrString = serde_json::from_str(r#""http""#).expect("string");
        assert_eq!(v, s("http"));
        assert_eq!(serde_json::to_string(&v).expect("serializes"), r#""http""#);
        let v: IntOrString = serde_json::from_str(r#""25%""#).expect("string");
        assert!(v.is_percent());
        assert!(serde_json::from_str::<IntOrString>("1.5").is_err());
        assert!(serde_json::from_str::<IntOrString>("4294967296").is_err());
        assert!(serde_json::from_str::<IntOrString>("[1]").is_err());
    }

    #[test]
    fn postcard_round_trip() {
        for v in [IntOrString::Int(0), IntOrString::Int(-7), s("25%"), s("")] {
            let bytes = postcard::to_allocvec(&v).expect("serializes");
            let back: IntOrString = postcard::from_bytes(&bytes).expect("deserializes");
            assert_eq!(back, v);
        }
    }
}
