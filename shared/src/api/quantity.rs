//! Kubernetes resource quantities: `resource.Quantity` from `k8s.io/apimachinery`.
//!
//! A [`Quantity`] is an exact decimal number with a remembered [`Format`]. It parses,
//! compares and prints the way Kubernetes' `resource.Quantity` does, so a manifest that
//! round-trips through kelp reads back the same as it would from a real API server.
//!
//! # Grammar
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= <number> | <sign><number>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <sign>            ::= "+" | "-"
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>   (an integer exponent)
//! ```
//!
//! Kubernetes' scanner is a little more permissive than that grammar, and so is this one,
//! on purpose: a number part with no digits at all (`"."`, `"-"`, `"m"`, `"Ki"`, `"e3"`)
//! parses as zero, except where Kubernetes' slow path rejects it (`"Pi"`, `"Ei"`, or a
//! decimal exponent below `-9`, e.g. `"e-12"`). Whitespace anywhere is an error for
//! [`Quantity::parse`]; only deserialization trims it first, as Kubernetes' `UnmarshalJSON`
//! does.
//!
//! # Value
//!
//! The value is exact (`"1Ei"` is 2^60, `"1n"` is 10^-9). As in Kubernetes:
//!
//! - values are kept to nano precision: anything finer is rounded *away from zero* to the
//!   next nano (`"0.1n"` is `1n`, `"3.001n"` is `4n`, `"-0.1n"` is `-1n`), so a request for
//!   a tiny non-zero amount never becomes zero;
//! - binary-SI quantities are capped at 2^63-1 in magnitude (`"9Ei"` is 9223372036854775807);
//!   decimal ones are not capped;
//! - a binary-SI quantity strictly between -1 and 1 (`"0.000000000001Ki"`) becomes decimal SI.
//!
//! Equality and ordering are numeric: `"1Gi" == "1024Mi"`, `"1000m" == "1"`, `"0.5" == "500m"`.
//!
//! # Printing
//!
//! [`Display`](fmt::Display) (and serialization) prints what Kubernetes' `Quantity.String()`
//! prints. That is the canonical form ([`Quantity::to_canonical_string`]), in the quantity's
//! format, with the largest suffix (or exponent, a multiple of 3) that loses no precision
//! and emits no fractional digits: `"1.5"` prints `1500m`, `"1.5Gi"` prints `1536Mi`,
//! `"12e6"` prints `12e6`, `"1e4"` prints `10e3`. A binary-SI value that is below 1024 in
//! magnitude or not an integer prints as decimal SI (`"0.5Ki"` prints `512`, `"1.1Ki"`
//! prints `1126400m`, `"5.5Ki"` prints `5632`).
//!
//! One Kubernetes quirk is kept on purpose: when the input text already passes Kubernetes'
//! own (cheap, slightly loose) "is this canonical?" test, Kubernetes keeps that text and
//! prints it back verbatim. So `"+1"` prints `+1`, `"007"` prints `007`, `"1E3"` prints
//! `1E3`, `"1.500"` prints `1.500` and `"1."` prints `1.`, exactly as `kubectl get -o yaml`
//! would show them. Any arithmetic, [`Quantity::with_format`] or negation drops the kept
//! text; [`Quantity::to_canonical_string`] never uses it.
//!
//! # Deliberate differences from Kubernetes
//!
//! - A decimal-SI value of 10^21 or more has no SI suffix; Kubernetes then prints the digits
//!   *without* any suffix (`"1000E"` prints `1`, a different number). kelp prints the
//!   exponent form instead (`1e21`), which parses back to the same value.
//! - Kubernetes uses arbitrary-precision numbers; kelp keeps up to 38 significant digits
//!   (after the nano rounding) and rejects longer inputs ([`QuantityErrorKind::TooManyDigits`]).
//!   Decimal exponents outside the `i32` range are rejected too (Kubernetes wraps them).
//! - [`Quantity::value`] and friends always round away from zero, as their Kubernetes
//!   documentation says (Kubernetes' big-number path rounds some negative values towards
//!   +infinity instead), and saturate at the `i64` range instead of overflowing.
//! - A JSON number reaches kelp as an `f64`, so `1.500` or `1e3` written as a bare JSON
//!   number prints as `1500m` / `1k` (Kubernetes would keep the raw JSON text). YAML numbers
//!   behave exactly as in Kubernetes, which also converts them through `float64`.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// How a [`Quantity`] prints: the kind of suffix it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// A decimal exponent, e.g. `12e6` (12 × 10^6).
    DecimalExponent,
    /// A binary SI suffix, e.g. `12Mi` (12 × 2^20).
    BinarySI,
    /// A decimal SI suffix (or none), e.g. `12M` (12 × 10^6), `500m`, `3`.
    #[default]
    DecimalSI,
}

/// The most significant digits a [`Quantity`] keeps.
pub const MAX_SIGNIFICANT_DIGITS: usize = 38;

/// Nano: the finest precision a parsed quantity keeps (10^-9).
const NANO_EXP: i64 = -9;

/// The cap on binary-SI quantities: 2^63-1.
const BINARY_SI_MAX: u128 = i64::MAX as u128;

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A Kubernetes resource quantity such as `250m`, `1.5Gi` or `12e6`.
///
/// See the [module documentation](self) for the grammar, the rounding rules and exactly how
/// it prints. Compare quantities with `==` / `<`: both are numeric, whatever the format.
#[derive(Clone, Default)]
pub struct Quantity {
    /// The value is `mantissa × 10^exponent`. Normalized: the mantissa has no trailing
    /// zeros (zero is `0 × 10^0`) and fewer than 39 digits, and the exponent is at least
    /// -9 (nano precision), so every value has exactly one representation.
    mantissa: i128,
    exponent: i64,
    format: Format,
    /// The input text, kept where Kubernetes keeps it (see the module documentation).
    verbatim: Option<Box<str>>,
}

/// Why a string is not a valid [`Quantity`]. Its message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {kind}")]
pub struct QuantityError {
    input: String,
    kind: QuantityErrorKind,
}

impl QuantityError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was wrong with it.
    pub fn kind(&self) -> &QuantityErrorKind {
        &self.kind
    }
}

/// The reason a [`QuantityError`] was raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantityErrorKind {
    /// The string was empty.
    #[error("empty string; expected a number with an optional suffix, e.g. \"500m\" or \"1Gi\"")]
    Empty,
    /// A character that cannot appear where it does (a space, a unit like `B`, ...).
    #[error(
        "unexpected {found:?} at byte {index}; expected a number with an optional suffix, \
         e.g. \"500m\", \"1.5Gi\" or \"2e3\""
    )]
    UnexpectedChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the input.
        index: usize,
    },
    /// The number has a second `.`.
    #[error("more than one decimal point")]
    MultipleDecimalPoints,
    /// The suffix is not one Kubernetes knows (suffixes are case-sensitive).
    #[error(
        "unknown suffix {0:?}; expected one of n, u, m, k, M, G, T, P, E (decimal), \
         Ki, Mi, Gi, Ti, Pi, Ei (binary) or an exponent such as e3 or E-6"
    )]
    UnknownSuffix(String),
    /// A decimal exponent outside the `i32` range.
    #[error("exponent {0:?} is out of range")]
    ExponentOutOfRange(String),
    /// The number part has no digits, where Kubernetes rejects that (e.g. `"Pi"`).
    #[error("the number has no digits")]
    NoDigits,
    /// More significant digits than kelp keeps.
    #[error("more than {MAX_SIGNIFICANT_DIGITS} significant digits")]
    TooManyDigits,
    /// A floating-point number that is NaN or infinite.
    #[error("not a finite number")]
    NotFinite,
}

impl Quantity {
    /// Zero, in decimal SI.
    pub const fn zero() -> Self {
        Quantity {
            mantissa: 0,
            exponent: 0,
            format: Format::DecimalSI,
            verbatim: None,
        }
    }

    /// `value` in the given format (Kubernetes' `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Self {
        Self::from_parts(i128::from(value), 0, format)
            .unwrap_or_else(|| unreachable!("an i64 always fits"))
    }

    /// `value / 1000` in the given format (Kubernetes' `NewMilliQuantity`).
    pub fn new_milli(value: i64, format: Format) -> Self {
        Self::from_parts(i128::from(value), -3, format)
            .unwrap_or_else(|| unreachable!("an i64 always fits"))
    }

    /// `value × 10^scale` in decimal SI (Kubernetes' `NewScaledQuantity`); `scale` is -3
    /// for milli, 6 for mega. Below nano, the value is rounded away from zero to the next
    /// nano, as parsing does.
    pub fn new_scaled(value: i64, scale: i32) -> Self {
        Self::from_parts(i128::from(value), i64::from(scale), Format::DecimalSI)
            .unwrap_or_else(|| unreachable!("an i64 always fits"))
    }

    /// Parses a quantity string; the same as [`str::parse`]. Whitespace is an error.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        parse_quantity(s).map_err(|kind| QuantityError {
            input: s.to_owned(),
            kind,
        })
    }

    /// The format this quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The same value, printed in another format (like assigning `q.Format` in Go).
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self.verbatim = None;
        self
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1: the sign of the value.
    pub fn signum(&self) -> i32 {
        // Cannot truncate: signum is -1, 0 or 1.
        self.mantissa.signum() as i32
    }

    /// The value rounded up, away from zero, to an integer (Kubernetes' `Value()`):
    /// `"1.5"` → 2, `"100m"` → 1, `"-1.5"` → -2. Saturates at the `i64` range.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths, rounded away from zero (Kubernetes' `MilliValue()`):
    /// `"0.5"` → 500, `"1n"` → 1. Saturates at the `i64` range.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The value in units of 10^`scale`, rounded away from zero (Kubernetes'
    /// `ScaledValue()`): `scaled_value(-9)` is nanos, `scaled_value(6)` is megas.
    /// Saturates at the `i64` range.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let m = self.mantissa;
        if m == 0 {
            return 0;
        }
        let shift = self.exponent - i64::from(scale);
        let scaled = if shift >= 0 {
            pow10(shift)
                .and_then(|p| m.checked_mul(p))
                .unwrap_or(m.signum() * i128::MAX)
        } else {
            match pow10(-shift) {
                // |m| < 10^38 <= 10^-shift: a non-zero fraction of one unit.
                None => m.signum(),
                Some(p) => m / p + if m % p == 0 { 0 } else { m.signum() },
            }
        };
        i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX })
    }

    /// The exact value as an `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        if self.exponent < 0 {
            return None;
        }
        let v = pow10(self.exponent).and_then(|p| self.mantissa.checked_mul(p))?;
        i64::try_from(v).ok()
    }

    /// The value as the nearest `f64` (±infinity if out of range).
    pub fn as_f64(&self) -> f64 {
        // Rust's float parser rounds correctly, so this is the nearest f64.
        format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }

    /// `self + other`, or `None` if the exact sum has more than 38 significant digits.
    /// A zero `self` takes `other`'s format, as Kubernetes' `Add` does.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        let exponent = self.exponent.min(other.exponent);
        let a = self
            .mantissa
            .checked_mul(pow10(self.exponent - exponent)?)?;
        let b = other
            .mantissa
            .checked_mul(pow10(other.exponent - exponent)?)?;
        Self::from_parts(a.checked_add(b)?, exponent, format)
    }

    /// `self - other`, or `None` if the exact difference has more than 38 significant
    /// digits. A zero `self` takes `other`'s format, as Kubernetes' `Sub` does.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        self.checked_add(&-other.clone())
    }

    /// The canonical form, as Kubernetes' `CanonicalizeBytes` makes it, ignoring any input
    /// text that [`Display`](fmt::Display) would keep: `"+1"` → `1`, `"1.500"` → `1500m`.
    pub fn to_canonical_string(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_owned();
        }
        let mut out = String::new();
        if self.mantissa < 0 {
            out.push('-');
        }
        let magnitude = self.mantissa.unsigned_abs();
        if self.format == Format::BinarySI {
            if let Some(mut n) = self.binary_integer(magnitude) {
                let mut power = 0;
                while power < BINARY_SUFFIXES.len() - 1 && n % 1024 == 0 {
                    n /= 1024;
                    power += 1;
                }
                let _ = write!(out, "{n}{}", BINARY_SUFFIXES[power]);
                return out;
            }
            // Below 1024 in magnitude, or fractional: printed as decimal SI.
        }
        // The largest multiple of 3 not above the exponent: no fractional digits.
        let exponent = self.exponent.div_euclid(3) * 3;
        let _ = write!(out, "{magnitude}");
        for _ in exponent..self.exponent {
            out.push('0');
        }
        let suffix = match (self.format, exponent) {
            (Format::DecimalExponent, 0) => "",
            (Format::DecimalExponent, _) => return format!("{out}e{exponent}"),
            (_, -9) => "n",
            (_, -6) => "u",
            (_, -3) => "m",
            (_, 0) => "",
            (_, 3) => "k",
            (_, 6) => "M",
            (_, 9) => "G",
            (_, 12) => "T",
            (_, 15) => "P",
            (_, 18) => "E",
            // Beyond `E` there is no SI suffix; see the module documentation.
            (_, _) => return format!("{out}e{exponent}"),
        };
        out.push_str(suffix);
        out
    }

    /// |value| as an integer, if it is one of at least 1024 (so it prints with a binary
    /// suffix).
    fn binary_integer(&self, magnitude: u128) -> Option<u128> {
        if self.exponent < 0 {
            return None;
        }
        let n = magnitude.checked_mul(pow10(self.exponent)?.unsigned_abs())?;
        (n >= 1024).then_some(n)
    }

    /// Builds a normalized quantity from `mantissa × 10^exponent`, rounding below nano away
    /// from zero; `None` if it needs more than 38 significant digits.
    fn from_parts(mut mantissa: i128, mut exponent: i64, format: Format) -> Option<Self> {
        if mantissa == 0 {
            return Some(Quantity {
                format,
                ..Quantity::zero()
            });
        }
        strip_trailing_zeros(&mut mantissa, &mut exponent);
        if exponent < NANO_EXP {
            let sign = mantissa.signum();
            mantissa = match pow10(NANO_EXP - exponent) {
                None => sign,
                Some(p) => mantissa / p + if mantissa % p == 0 { 0 } else { sign },
            };
            exponent = NANO_EXP;
            strip_trailing_zeros(&mut mantissa, &mut exponent);
        }
        (mantissa.unsigned_abs() < MAX_MANTISSA).then_some(Quantity {
            mantissa,
            exponent,
            format,
            verbatim: None,
        })
    }

    /// The order of magnitude: the exponent of the leading digit plus one.
    fn magnitude_order(&self) -> i64 {
        i64::from(self.mantissa.unsigned_abs().ilog10()) + 1 + self.exponent
    }
}

/// 10^38: every mantissa is smaller in magnitude.
const MAX_MANTISSA: u128 = 10u128.pow(MAX_SIGNIFICANT_DIGITS as u32);

/// 10^n as an i128, for 0 <= n <= 38.
fn pow10(n: i64) -> Option<i128> {
    u32::try_from(n).ok().and_then(|n| 10i128.checked_pow(n))
}

fn strip_trailing_zeros(mantissa: &mut i128, exponent: &mut i64) {
    while *mantissa != 0 && *mantissa % 10 == 0 {
        *mantissa /= 10;
        *exponent += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// A quantity string, split the way Kubernetes' `parseQuantityString` splits it.
struct Scanned<'a> {
    negative: bool,
    /// Integer digits without leading zeros (empty for zero).
    num: &'a str,
    /// Fraction digits.
    denom: &'a str,
    suffix: &'a str,
    /// Whether the number part had any digit at all.
    has_digits: bool,
}

/// What a suffix means: a power of ten or a power of two.
#[derive(Clone, Copy)]
enum Base {
    Ten(i32),
    Two(u32),
}

fn scan(s: &str) -> Result<Scanned<'_>, QuantityErrorKind> {
    let bytes = s.as_bytes();
    let end = bytes.len();
    let mut pos = 0;
    let mut negative = false;
    match bytes.first() {
        Some(b'-') => {
            negative = true;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let zeros_start = pos;
    while pos < end && bytes[pos] == b'0' {
        pos += 1;
    }
    if pos == end {
        // Only zeros, or nothing, after the sign: Kubernetes returns zero here, so a bare
        // "-" or "+" is zero too.
        return Ok(Scanned {
            negative,
            num: "",
            denom: "",
            suffix: "",
            has_digits: true,
        });
    }
    let had_zeros = pos > zeros_start;
    let num_start = pos;
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    let mut has_point = false;
    if pos < end && bytes[pos] == b'.' {
        has_point = true;
        pos += 1;
        let denom_start = pos;
        while pos < end && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    let has_digits = had_zeros || !num.is_empty() || !denom.is_empty();

    // The suffix: letters from Kubernetes' set, then an optional signed integer.
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < end && matches!(bytes[pos], b'+' | b'-') {
        pos += 1;
    }
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        // Everything skipped so far is ASCII, so `pos` is on a character boundary.
        let found = s[pos..].chars().next().unwrap_or('\0');
        return Err(if found == '.' && has_point && pos == suffix_start {
            QuantityErrorKind::MultipleDecimalPoints
        } else {
            QuantityErrorKind::UnexpectedChar { found, index: pos }
        });
    }
    Ok(Scanned {
        negative,
        num,
        denom,
        suffix: &s[suffix_start..],
        has_digits,
    })
}

fn interpret(suffix: &str) -> Result<(Base, Format), QuantityErrorKind> {
    let decimal = |e| Ok((Base::Ten(e), Format::DecimalSI));
    let binary = |p| Ok((Base::Two(p), Format::BinarySI));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ if suffix.len() > 1 && suffix.starts_with(['e', 'E']) => {
            // Go's strconv.ParseInt(_, 10, 64) and Rust's i64 parsing accept the same
            // syntax: an optional sign and at least one ASCII digit.
            match suffix[1..].parse::<i64>() {
                Ok(e) => i32::try_from(e)
                    .map(|e| (Base::Ten(e), Format::DecimalExponent))
                    .map_err(|_| QuantityErrorKind::ExponentOutOfRange(suffix[1..].to_owned())),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                    ) =>
                {
                    Err(QuantityErrorKind::ExponentOutOfRange(
                        suffix[1..].to_owned(),
                    ))
                }
                Err(_) => Err(QuantityErrorKind::UnknownSuffix(suffix.to_owned())),
            }
        }
        _ => Err(QuantityErrorKind::UnknownSuffix(suffix.to_owned())),
    }
}

/// Whether Kubernetes' `ParseQuantity` takes its int64 fast path for this input. That path
/// decides two quirks: digit-less numbers are zero on it (and an error off it), and only on
/// it can the input text be kept for printing.
fn k8s_fast_path(sc: &Scanned<'_>, base: Base) -> bool {
    // Kubernetes counts an empty integer part as "0".
    let num_len = sc.num.len().max(1) as i64;
    let denom_len = sc.denom.len() as i64;
    match base {
        // Kubernetes: 18 - (len(num) + len(denom)) >= 0 && exponent - len(denom) >= -9.
        Base::Ten(e) => num_len + denom_len <= 18 && i64::from(e) - denom_len >= NANO_EXP,
        // Kubernetes: 15 - len(num) - int32(float32(exponent)*3/10) - 1 >= 0 (the float
        // arithmetic is exact for exponents 10..=60).
        Base::Two(p) => denom_len == 0 && num_len + i64::from(p) * 3 / 10 <= 14,
    }
}

/// Whether Kubernetes keeps the input text as the printed form: its quick check that the
/// input is already canonical (on the fast path only).
fn k8s_keeps_text(sc: &Scanned<'_>, base: Base) -> bool {
    match base {
        Base::Ten(e) => {
            let scale = i64::from(e) - sc.denom.len() as i64;
            // `num` has no leading zeros, so `shifted` starts with '0' only for a zero
            // integer part (Kubernetes' "0").
            let shifted = format!(
                "{}{}",
                if sc.num.is_empty() { "0" } else { sc.num },
                sc.denom
            );
            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
        }
        // At most 11 digits here, so the parse cannot fail.
        Base::Two(_) => sc.num.parse::<u64>().unwrap_or(0) & 7 != 0,
    }
}

fn parse_quantity(s: &str) -> Result<Quantity, QuantityErrorKind> {
    if s.is_empty() {
        return Err(QuantityErrorKind::Empty);
    }
    let sc = scan(s)?;
    let (base, mut format) = interpret(sc.suffix)?;
    let fast_path = k8s_fast_path(&sc, base);
    if !sc.has_digits && !fast_path {
        return Err(QuantityErrorKind::NoDigits);
    }
    let keep_text = fast_path && k8s_keeps_text(&sc, base);

    // The exact value, as decimal digits (most significant first) × 10^exponent.
    let mut digits: Vec<u8> = sc
        .num
        .bytes()
        .chain(sc.denom.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut exponent = -(sc.denom.len() as i64);
    match base {
        Base::Ten(e) => exponent += i64::from(e),
        Base::Two(p) => {
            for _ in 0..p {
                double(&mut digits);
            }
        }
    }
    let leading_zeros = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading_zeros);
    if digits.is_empty() {
        return Ok(Quantity {
            format,
            ..Quantity::zero()
        });
    }
    strip_trailing_digit_zeros(&mut digits, &mut exponent);

    if exponent < NANO_EXP {
        // Round away from zero to nano precision. The dropped digits are never all zero:
        // the last digit is not 0.
        let dropped = usize::try_from(NANO_EXP - exponent).unwrap_or(usize::MAX);
        if dropped >= digits.len() {
            digits = vec![1];
        } else {
            digits.truncate(digits.len() - dropped);
            increment(&mut digits);
        }
        exponent = NANO_EXP;
        strip_trailing_digit_zeros(&mut digits, &mut exponent);
    }
    if let Base::Two(_) = base {
        if exceeds_binary_si_max(&digits, exponent) {
            digits = BINARY_SI_MAX
                .to_string()
                .bytes()
                .map(|b| b - b'0')
                .collect();
            exponent = 0;
        }
        if digits.len() as i64 + exponent <= 0 {
            // Strictly between -1 and 1.
            format = Format::DecimalSI;
        }
    }
    if digits.len() > MAX_SIGNIFICANT_DIGITS {
        return Err(QuantityErrorKind::TooManyDigits);
    }
    let magnitude = digits
        .iter()
        .fold(0i128, |acc, &d| acc * 10 + i128::from(d));
    Ok(Quantity {
        mantissa: if sc.negative { -magnitude } else { magnitude },
        exponent,
        format,
        verbatim: keep_text.then(|| s.into()),
    })
}

/// Doubles a big-endian decimal digit string in place.
fn double(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut().rev() {
        let v = *d * 2 + carry;
        *d = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.insert(0, carry);
    }
}

/// Adds one to a big-endian decimal digit string in place.
fn increment(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
}

fn strip_trailing_digit_zeros(digits: &mut Vec<u8>, exponent: &mut i64) {
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
        *exponent += 1;
    }
}

/// Whether `digits × 10^exponent` (normalized, non-zero) is above 2^63-1.
fn exceeds_binary_si_max(digits: &[u8], exponent: i64) -> bool {
    let integer_len = digits.len() as i64 + exponent;
    match integer_len.cmp(&19) {
        Ordering::Less => false,
        Ordering::Greater => true,
        Ordering::Equal => {
            let integer = digits
                .iter()
                .map(|&d| u128::from(d))
                .chain(std::iter::repeat(0))
                .take(19)
                .fold(0u128, |acc, d| acc * 10 + d);
            // Any digit past the 19th is a non-zero fraction (the last digit is not 0).
            integer > BINARY_SI_MAX || (integer == BINARY_SI_MAX && digits.len() > 19)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Traits
// ---------------------------------------------------------------------------------------

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    /// What Kubernetes' `Quantity.String()` prints (see the module documentation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verbatim {
            Some(text) => f.pad(text),
            None => f.pad(&self.to_canonical_string()),
        }
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({:?}, {:?})", self.to_string(), self.format)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        // Normalized: one representation per value.
        self.mantissa == other.mantissa && self.exponent == other.exponent
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.mantissa.hash(state);
        self.exponent.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_sign = self.mantissa.signum().cmp(&other.mantissa.signum());
        if by_sign != Ordering::Equal || self.mantissa == 0 {
            return by_sign;
        }
        let by_magnitude = match self.magnitude_order().cmp(&other.magnitude_order()) {
            Ordering::Equal => {
                // Same order of magnitude: aligning the exponents gives both mantissas the
                // same number of digits (at most 38), which cannot overflow.
                let (a, b) = (self.mantissa.unsigned_abs(), other.mantissa.unsigned_abs());
                let scale = |n: u128, by: i64| n * pow10(by).map_or(1, i128::unsigned_abs);
                if self.exponent >= other.exponent {
                    scale(a, self.exponent - other.exponent).cmp(&b)
                } else {
                    a.cmp(&scale(b, other.exponent - self.exponent))
                }
            }
            unequal => unequal,
        };
        if self.mantissa > 0 {
            by_magnitude
        } else {
            by_magnitude.reverse()
        }
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity {
            mantissa: -self.mantissa,
            verbatim: None,
            ..self
        }
    }
}

impl Serialize for Quantity {
    /// Serializes as the string [`Display`](fmt::Display) prints.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts a string (surrounding whitespace trimmed, as Kubernetes does) or, in
    /// self-describing formats, a number: YAML `cpu: 2` and `cpu: 0.5` are quantities. A
    /// null is zero, as in Kubernetes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(QuantityVisitor)
        } else {
            deserializer.deserialize_str(QuantityVisitor)
        }
    }
}

struct QuantityVisitor;

impl QuantityVisitor {
    fn parse<E: de::Error>(text: &str) -> Result<Quantity, E> {
        Quantity::parse(text).map_err(E::custom)
    }
}

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity: a string such as \"500m\" or \"1Gi\", or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Self::parse(v.trim())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Quantity, E> {
        Self::parse(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        if !v.is_finite() {
            return Err(E::custom(QuantityError {
                input: v.to_string(),
                kind: QuantityErrorKind::NotFinite,
            }));
        }
        Self::parse(&go_float_text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Quantity, E> {
        Ok(Quantity::zero())
    }

    fn visit_none<E: de::Error>(self) -> Result<Quantity, E> {
        Ok(Quantity::zero())
    }
}

/// The text Go's `encoding/json` writes for a float64 (shortest round-trip digits;
/// exponent notation below 1e-6 and from 1e21), which is what Kubernetes parses when a
/// YAML number becomes a quantity.
fn go_float_text(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn q(s: &str) -> Quantity {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    /// Sources for the expectations below, all in kubernetes/apimachinery unless noted:
    const GODOC: &str = "pkg/api/resource/quantity.go, Quantity godoc";
    const PARSE_EMIT: &str = "quantity_test.go TestQuantityParseEmit";
    const STRING_ALT: &str = "quantity_test.go TestQuantityString (alternate form)";
    const STRING_KEEP: &str = "quantity_test.go TestQuantityString (canonical input kept)";
    const PARSE_BIG: &str = "quantity_test.go TestParseQuantity (canonical column)";
    const WHITESPACE: &str = "quantity_test.go TestJSONWhitespace";
    const DERIVED: &str = "derived by tracing ParseQuantity + CanonicalizeBytes in quantity.go";

    /// (input, what Kubernetes' String() prints, source)
    const PRINTING: &[(&str, &str, &str)] = &[
        ("1.5", "1500m", GODOC),
        ("1.5Gi", "1536Mi", GODOC),
        ("1Ki", "1Ki", PARSE_EMIT),
        ("1Mi", "1Mi", PARSE_EMIT),
        ("1Gi", "1Gi", PARSE_EMIT),
        ("1024Mi", "1Gi", PARSE_EMIT),
        ("1000M", "1G", PARSE_EMIT),
        (".001Ki", "1024m", PARSE_EMIT),
        (".000001Ki", "1024u", PARSE_EMIT),
        (".000000001Ki", "1024n", PARSE_EMIT),
        (".000000000001Ki", "2n", PARSE_EMIT),
        ("-1024Mi", "-1Gi", PARSE_EMIT),
        ("-.000000000001Ki", "-2n", PARSE_EMIT),
        ("307200Ki", "300Mi", STRING_ALT),
        ("1025024Mi", "1001Gi", STRING_ALT),
        ("1024Gi", "1Ti", STRING_ALT),
        ("5000m", "5", STRING_ALT),
        ("0.5", "500m", STRING_ALT),
        ("0.001T", "1G", STRING_ALT),
        ("1000u", "1m", STRING_ALT),
        ("1.08", "1080m", STRING_ALT),
        ("1080000000n", "1080m", STRING_ALT),
        (".001e12", "1e9", STRING_ALT),
        ("0.001e0", "1e-3", STRING_ALT),
        ("1000e-12", "1e-9", STRING_ALT),
        ("00", "0", STRING_ALT),
        ("6Ki", "6Ki", STRING_KEEP),
        ("1001Gi", "1001Gi", STRING_KEEP),
        ("1234567M", "1234567M", STRING_KEEP),
        ("80e-3", "80e-3", STRING_KEEP),
        ("300e6", "300e6", STRING_KEEP),
        ("1080n", "1080n", STRING_KEEP),
        ("1080u", "1080u", STRING_KEEP),
        ("0", "0", "quantity_test.go TestQuantityParseZero"),
        ("999999999999999999.1", "999999999999999999100m", PARSE_BIG),
        ("-999999999999999999.0", "-999999999999999999", PARSE_BIG),
        ("1000000000000000000", "1E", PARSE_BIG),
        ("1.0E", "1E", PARSE_BIG),
        (
            "-1.0000000000000000001E",
            "-1000000000000000000100m",
            PARSE_BIG,
        ),
        ("1.000000000000000001E", "1000000000000000001", PARSE_BIG),
        ("10000000000000000000000m", "10E", PARSE_BIG),
        ("-10.0E", "-10E", PARSE_BIG),
        ("9223372036854775807", "9223372036854775807", PARSE_BIG),
        ("9223372036854775808000m", "9223372036854775808", PARSE_BIG),
        (
            "-9223372036854775808.1",
            "-9223372036854775808100m",
            PARSE_BIG,
        ),
        ("10000000000000000001", "10000000000000000001", PARSE_BIG),
        (
            "0.1",
            "100m",
            "k8s docs, Resource Management for Pods and Containers: 0.1 is 100m",
        ),
        ("1e3", "1e3", DERIVED),
        ("12e6", "12e6", DERIVED),
        ("129e6", "129e6", DERIVED),
        ("1e4", "10e3", DERIVED),
        ("1E3", "1E3", DERIVED),
        ("1.0e3", "1e3", DERIVED),
        ("1000m", "1", DERIVED),
        ("100000000n", "100m", DERIVED),
        ("1000000000n", "1", DERIVED),
        ("1024Ki", "1Mi", DERIVED),
        ("0.5Gi", "512Mi", DERIVED),
        ("0.5Mi", "512Ki", DERIVED),
        ("0.5Ki", "512", DERIVED),
        ("5.5Ki", "5632", DERIVED),
        ("1.1Ki", "1126400m", DERIVED),
        ("100.035Ki", "102435840m", DERIVED),
        ("1023Ki", "1023Ki", DERIVED),
        ("8Ki", "8Ki", DERIVED),
        ("9Ei", "9223372036854775807", DERIVED),
        ("-9Ei", "-9223372036854775807", DERIVED),
        ("1Ei", "1Ei", DERIVED),
        ("1024Ei", "9223372036854775807", DERIVED),
        ("-1.5", "-1500m", DERIVED),
        ("1536", "1536", DERIVED),
        (".5", "500m", DERIVED),
        ("1.1", "1100m", DERIVED),
        ("10m", "10m", DERIVED),
        ("1000", "1k", DERIVED),
        ("1.5k", "1500", DERIVED),
        ("3.001n", "4n", DERIVED),
        ("0.0000000001", "1n", DERIVED),
        ("-0.1n", "-1n", DERIVED),
        ("1.1E-9", "2e-9", DERIVED),
        ("0.9999999999", "1", DERIVED),
        ("-0", "0", DERIVED),
        ("0Ki", "0", DERIVED),
        ("12E", "12E", DERIVED),
        // Kubernetes keeps input text that passes its quick canonical check.
        ("+1", "+1", DERIVED),
        ("007", "007", DERIVED),
        ("1.500", "1.500", DERIVED),
        ("1.", "1.", DERIVED),
        ("1.G", "1.G", DERIVED),
        ("+3Ki", "+3Ki", DERIVED),
        ("1e+3", "1e+3", DERIVED),
        // Digit-less numbers are zero in Kubernetes.
        (".", "0", DERIVED),
        ("-", "0", DERIVED),
        ("m", "0", DERIVED),
        ("Ki", "0", DERIVED),
    ];

    #[test]
    fn prints_like_kubernetes() {
        assert!(PRINTING.len() >= 30);
        for &(input, expected, source) in PRINTING {
            let quantity = q(input);
            assert_eq!(
                quantity.to_string(),
                expected,
                "{input:?} (source: {source})"
            );
            // What it prints parses back to the same value, and prints the same.
            let again = q(expected);
            assert_eq!(again, quantity, "{input:?} -> {expected:?} changed value");
            assert_eq!(again.to_string(), expected, "{expected:?} is not stable");
        }
    }

    #[test]
    fn canonical_string_ignores_kept_text() {
        for (input, canonical) in [
            ("+1", "1"),
            ("007", "7"),
            ("1.500", "1500m"),
            ("1.", "1"),
            ("1E3", "1e3"),
            ("1e+3", "1e3"),
            ("+3Ki", "3Ki"),
            ("1e3", "1e3"),
            ("1536Mi", "1536Mi"),
        ] {
            assert_eq!(q(input).to_canonical_string(), canonical, "{input:?}");
        }
    }

    #[test]
    fn negatives_print_with_a_minus() {
        // TestQuantityString: every canonical form, negated, prints with a leading "-".
        for s in [
            "1Gi", "300Mi", "5", "500m", "1G", "1080m", "1e9", "1e-3", "80e-3", "1u",
        ] {
            assert_eq!((-q(s)).to_string(), format!("-{s}"));
        }
        // TestQuantityNeg.
        assert_eq!((-q("9.01")).to_string(), "-9010m");
    }

    #[test]
    fn formats_are_remembered() {
        // TestQuantityParse: the format each input parses to.
        for (input, format) in [
            ("0Ki", Format::BinarySI),
            ("0", Format::DecimalSI),
            ("1e3", Format::DecimalExponent),
            ("1.3E+6", Format::DecimalExponent),
            ("7Mi", Format::BinarySI),
            ("50k", Format::DecimalSI),
            ("0.5Mi", Format::BinarySI),
            ("9Ei", Format::BinarySI),
            ("0.000000000001Ki", Format::DecimalSI),
            ("1.1E-9", Format::DecimalExponent),
        ] {
            assert_eq!(q(input).format(), format, "{input:?}");
        }
    }

    #[test]
    fn parses_exact_values() {
        // TestQuantityParse (value column), as nanos.
        for (input, nanos) in [
            ("1", 1_000_000_000i64),
            ("5n", 5),
            ("4u", 4_000),
            ("3m", 3_000_000),
            ("8k", 8_000_000_000_000),
            ("100.035k", 100_035_000_000_000),
            ("0.0005k", 500_000_000),
            ("0.5e-2", 5_000_000),
            ("1.2e3", 1_200_000_000_000),
            ("3.001n", 4),
            ("0.0000000005", 1),
            ("0.00000012345", 124),
            ("0.00000012354", 124),
            ("0.5e-9", 1),
            ("0.9n", 1),
            (".0001k", 100_000_000),
            ("1.G", 1_000_000_000_000_000_000),
        ] {
            assert_eq!(q(input).scaled_value(-9), nanos, "{input:?}");
        }
        assert_eq!(q("1Ei").as_i64(), Some(1 << 60));
        assert_eq!(q("3Ei").as_i64(), Some(3 << 60));
        assert_eq!(q("4Pi").as_i64(), Some(4 << 50));
        assert_eq!(q("0.025Ti").scaled_value(-1), 274_877_906_944);
        assert_eq!(q("9223372036854775807Ki").as_i64(), Some(i64::MAX));
        assert_eq!(q("-9Ei").as_i64(), Some(-i64::MAX));
        assert_eq!(q("12E").to_canonical_string(), "12E");
        assert_eq!(q("1E").as_i64(), Some(1_000_000_000_000_000_000));
        assert_eq!(q("1n").as_i64(), None);
        // Decimal SI is not capped.
        assert_eq!(q("10E"), q("1e19"));
        assert!(q("10E") > q("9Ei"));
    }

    #[test]
    fn docs_memory_examples_are_roughly_equal() {
        // Resource Management for Pods and Containers: "128974848, 129e6, 129M,
        // 128974848000m, 123Mi" are about the same value.
        assert_eq!(q("129e6"), q("129M"));
        assert_eq!(q("128974848000m"), q("128974848"));
        assert_eq!(q("123Mi"), q("128974848"));
        assert_eq!(q("129M").value(), 129_000_000);
        // ... and "400m" of memory is 0.4 bytes.
        assert_eq!(q("400m").milli_value(), 400);
        assert_eq!(q("400m").value(), 1);
    }

    #[test]
    fn compares_numerically() {
        // TestQuantityCmp.
        assert_eq!(q("0"), q("0"));
        assert!(q("100m") > q("50m"));
        assert!(q("50m") < q("100m"));
        assert!(q("10000T") > q("100Gi"));
        // Same value, different spelling or format.
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("-0"), q("0"));
        assert_eq!(q("+1"), q("1"));
        assert!(q("-1") < q("-500m"));
        assert!(q("-1Ki") < q("1n"));
        assert!(q("1n") > q("0"));
        assert!(q("999m") < q("1"));
        assert!(q("1.000000001") > q("1"));
        assert!(q("1e30") > q("999999999999999999999999999999"));
        assert!(q("-1e30") < q("-999999999999999999999999999999"));
        let mut sorted = [q("1Gi"), q("-2"), q("500m"), q("1e3"), q("0"), q("1n")];
        sorted.sort();
        let printed: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["-2", "0", "1n", "500m", "1e3", "1Gi"]);
    }

    #[test]
    fn equal_values_hash_alike() {
        use std::collections::HashSet;
        let set: HashSet<Quantity> = ["1Gi", "1024Mi", "1073741824", "1.073741824G"]
            .into_iter()
            .map(q)
            .collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn value_accessors_round_away_from_zero() {
        for (input, value, milli) in [
            ("1.5", 2, 1500),
            ("100m", 1, 100),
            ("0.5", 1, 500),
            ("1n", 1, 1),
            ("1", 1, 1000),
            ("2", 2, 2000),
            ("250m", 1, 250),
            ("1.0001m", 1, 2),
            ("-1.5", -2, -1500),
            ("-1n", -1, -1),
            ("0", 0, 0),
            ("1Ki", 1024, 1_024_000),
            ("1Ei", 1 << 60, i64::MAX),
            ("-1Ei", -(1 << 60), i64::MIN),
            ("1e100", i64::MAX, i64::MAX),
        ] {
            assert_eq!(q(input).value(), value, "value of {input:?}");
            assert_eq!(q(input).milli_value(), milli, "milli value of {input:?}");
        }
        // TestScaledValue: 1 × 10^from in units of 10^to.
        for (from, to, expected) in [
            (-9, -9, 1),
            (-9, -6, 1),
            (-9, 0, 1),
            (-6, -9, 1000),
            (-3, -6, 1000),
            (0, -9, 1_000_000_000),
            (0, -3, 1000),
            (2, -2, 10_000),
        ] {
            assert_eq!(Quantity::new_scaled(1, from).scaled_value(to), expected);
        }
    }

    #[test]
    fn as_f64_is_nearest() {
        assert_eq!(q("0.5").as_f64(), 0.5);
        assert_eq!(q("1.5Gi").as_f64(), 1_610_612_736.0);
        assert_eq!(q("-250m").as_f64(), -0.25);
        assert_eq!(q("1n").as_f64(), 1e-9);
        assert_eq!(q("0.1").as_f64(), 0.1);
        assert_eq!(q("0").as_f64(), 0.0);
        assert_eq!(q("1e400").as_f64(), f64::INFINITY);
    }

    #[test]
    fn constructors_match_kubernetes() {
        // TestNewSet.
        assert_eq!(Quantity::new(1, Format::DecimalSI).to_string(), "1");
        assert_eq!(Quantity::new(1000, Format::DecimalSI).to_string(), "1k");
        assert_eq!(
            Quantity::new(1_234_000, Format::DecimalSI).to_string(),
            "1234k"
        );
        assert_eq!(Quantity::new(1024, Format::BinarySI).to_string(), "1Ki");
        assert_eq!(
            Quantity::new(1_000_000, Format::DecimalExponent).to_string(),
            "1e6"
        );
        assert_eq!(
            Quantity::new(1024 * 1024, Format::BinarySI).to_string(),
            "1Mi"
        );
        // TestMilliNewSet.
        assert_eq!(Quantity::new_milli(1, Format::DecimalSI).to_string(), "1m");
        assert_eq!(
            Quantity::new_milli(1000, Format::DecimalSI).to_string(),
            "1"
        );
        assert_eq!(
            Quantity::new_milli(1_234_000, Format::DecimalSI).to_string(),
            "1234"
        );
        assert_eq!(
            Quantity::new_milli(1024, Format::BinarySI).to_string(),
            "1024m"
        );
        assert_eq!(
            Quantity::new_milli(1_000_000, Format::DecimalExponent).to_string(),
            "1e3"
        );
        assert_eq!(
            Quantity::new_milli(1024 * 1024, Format::BinarySI).to_string(),
            "1048576m"
        );
        // TestNewScaledSet.
        for (value, scale, expected) in [
            (1, -9, "1n"),
            (1000, -9, "1u"),
            (1, -6, "1u"),
            (1000, -6, "1m"),
            (1, -3, "1m"),
            (1000, -3, "1"),
            (1, 0, "1"),
            (0, -9, "0"),
            (0, 0, "0"),
        ] {
            assert_eq!(Quantity::new_scaled(value, scale).to_string(), expected);
        }
        // Below nano, rounded up like parsing.
        assert_eq!(Quantity::new_scaled(1, -12).to_string(), "1n");
        assert_eq!(Quantity::new_scaled(-1001, -12).to_string(), "-2n");
        // TestQuantityString entries built from (value, scale, format).
        let built = |v, s, f| Quantity::new_scaled(v, s).with_format(f);
        assert_eq!(built(5, 0, Format::BinarySI).to_string(), "5");
        assert_eq!(built(500, -3, Format::BinarySI).to_string(), "500m");
        assert_eq!(
            built(1_234_567, -3, Format::BinarySI).to_string(),
            "1234567m"
        );
        assert_eq!(built(1025, 0, Format::BinarySI).to_string(), "1025");
        assert_eq!(built(1000, 6, Format::DecimalSI).to_string(), "1G");
        assert_eq!(built(10800, -4, Format::DecimalSI).to_string(), "1080m");
        assert_eq!(built(10800, -10, Format::DecimalSI).to_string(), "1080n");
        assert_eq!(built(0, 0, Format::DecimalExponent).to_string(), "0");
        assert_eq!(Quantity::default().to_string(), "0");
        assert_eq!(Quantity::zero(), Quantity::default());
    }

    #[test]
    fn beyond_exa_prints_an_exponent() {
        // Kubernetes would print "1" (no suffix exists); kelp keeps the value.
        assert_eq!(q("1000E").to_string(), "1e21");
        assert_eq!(q("10000000000000000000000").to_string(), "10e21");
        assert_eq!(q("1e21").with_format(Format::DecimalSI).to_string(), "1e21");
        assert_eq!(q("1e2147483647").to_string(), "10e2147483646");
        let huge = Quantity::new(i64::MAX, Format::BinarySI);
        let sum = huge.checked_add(&huge).expect("fits");
        assert_eq!(sum.to_string(), "18446744073709551614");
        // Beyond Ei there is no larger binary suffix.
        let four = Quantity::new(1 << 62, Format::BinarySI);
        let sixteen_ei = [&four, &four, &four]
            .into_iter()
            .try_fold(four.clone(), |acc, x| acc.checked_add(x));
        assert_eq!(sixteen_ei.expect("fits").to_string(), "16Ei");
        let mut acc = Quantity::zero();
        for _ in 0..1024 {
            acc = acc.checked_add(&q("1Ei")).expect("fits");
        }
        assert_eq!(acc.to_string(), "1024Ei");
        // Parsing caps it, as Kubernetes does.
        assert_eq!(q("1024Ei").to_string(), "9223372036854775807");
    }

    #[test]
    fn arithmetic_is_exact() {
        let sum = q("1.5Gi").checked_add(&q("512Mi")).expect("fits");
        assert_eq!(sum.to_string(), "2Gi");
        assert_eq!(
            q("100m").checked_add(&q("1n")).expect("fits").to_string(),
            "100000001n"
        );
        assert_eq!(q("1").checked_sub(&q("1")).expect("fits").to_string(), "0");
        assert_eq!(
            q("250m").checked_sub(&q("1")).expect("fits").to_string(),
            "-750m"
        );
        // A zero left-hand side takes the other format (TestQuantityAddZeroPreservesSuffix).
        assert_eq!(
            q("0").checked_add(&q("1Mi")).expect("fits").to_string(),
            "1Mi"
        );
        assert_eq!(
            q("0").checked_sub(&q("1Mi")).expect("fits").to_string(),
            "-1Mi"
        );
        assert_eq!(
            q("1Mi").checked_add(&q("0")).expect("fits").to_string(),
            "1Mi"
        );
        // Arithmetic drops kept input text.
        assert_eq!(q("+1").checked_add(&q("0")).expect("fits").to_string(), "1");
        assert_eq!(q("1e30").checked_add(&q("1n")), None);
        assert_eq!(-q("0"), q("0"));
        assert_eq!((-q("0")).to_string(), "0");
    }

    #[test]
    fn rejects_bad_input_with_clear_errors() {
        // TestQuantityParse's invalid list, then our own.
        for bad in [
            "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-",
        ] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?} should not parse");
        }
        let kind = |s: &str| s.parse::<Quantity>().expect_err(s).kind().clone();
        assert_eq!(kind(""), QuantityErrorKind::Empty);
        assert_eq!(
            kind(" 1"),
            QuantityErrorKind::UnexpectedChar {
                found: ' ',
                index: 0
            }
        );
        assert_eq!(
            kind("1 "),
            QuantityErrorKind::UnexpectedChar {
                found: ' ',
                index: 1
            }
        );
        assert_eq!(
            kind("1 Gi"),
            QuantityErrorKind::UnexpectedChar {
                found: ' ',
                index: 1
            }
        );
        assert_eq!(
            kind("1KB"),
            QuantityErrorKind::UnexpectedChar {
                found: 'B',
                index: 2
            }
        );
        assert_eq!(
            kind("1.5µ"),
            QuantityErrorKind::UnexpectedChar {
                found: 'µ',
                index: 3
            }
        );
        assert_eq!(kind("1.1.1"), QuantityErrorKind::MultipleDecimalPoints);
        assert_eq!(kind("1mi"), QuantityErrorKind::UnknownSuffix("mi".into()));
        assert_eq!(kind("1K"), QuantityErrorKind::UnknownSuffix("K".into()));
        assert_eq!(kind("1Ki5"), QuantityErrorKind::UnknownSuffix("Ki5".into()));
        assert_eq!(kind("1e"), QuantityErrorKind::UnknownSuffix("e".into()));
        assert_eq!(kind("1e+"), QuantityErrorKind::UnknownSuffix("e+".into()));
        assert_eq!(kind("1ee3"), QuantityErrorKind::UnknownSuffix("ee3".into()));
        assert_eq!(
            kind("1e3000000000"),
            QuantityErrorKind::ExponentOutOfRange("3000000000".into())
        );
        assert_eq!(
            kind("1e99999999999999999999"),
            QuantityErrorKind::ExponentOutOfRange("99999999999999999999".into())
        );
        assert_eq!(kind("Pi"), QuantityErrorKind::NoDigits);
        assert_eq!(kind("-.Ei"), QuantityErrorKind::NoDigits);
        assert_eq!(kind("e-12"), QuantityErrorKind::NoDigits);
        assert_eq!(
            kind("1234567890123456789012345678901234567890"),
            QuantityErrorKind::TooManyDigits
        );

        let err = "1KB".parse::<Quantity>().unwrap_err();
        assert_eq!(err.input(), "1KB");
        let message = err.to_string();
        assert!(
            message.starts_with("invalid quantity \"1KB\": unexpected 'B'"),
            "{message}"
        );
        let message = "1mi".parse::<Quantity>().unwrap_err().to_string();
        assert!(message.contains("\"1mi\"") && message.contains("unknown suffix \"mi\""));
        let message = "".parse::<Quantity>().unwrap_err().to_string();
        assert!(
            message.starts_with("invalid quantity \"\": empty"),
            "{message}"
        );
    }

    #[test]
    fn rounding_past_38_digits_is_fine() {
        // Digits below nano are rounded away before the digit limit applies.
        let long = "0.00000000012345678901234567890123456789012345678901234567890";
        assert_eq!(q(long).to_string(), "1n");
        // Huge binary quantities are capped before the digit limit applies.
        assert_eq!(
            q("99999999999999999999999999999999999999999999Ki").as_i64(),
            Some(i64::MAX)
        );
        assert_eq!(
            q("9223372036854775807.5").to_string(),
            "9223372036854775807500m"
        );
        assert_eq!(q("9223372036854775806.5Ki").as_i64(), Some(i64::MAX));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Resources {
        #[serde(default)]
        requests: BTreeMap<String, Quantity>,
        #[serde(default)]
        limits: BTreeMap<String, Quantity>,
    }

    #[test]
    fn yaml_strings_and_numbers() {
        let yaml = "requests:\n  cpu: \"250m\"\n  memory: 128Mi\n  storage: 1.5Gi\n\
                    limits:\n  cpu: 0.5\n  memory: 1\n  ephemeral: 1e3\n  gpu: 2\n  nil:\n";
        let r: Resources = serde_yaml_ng::from_str(yaml).expect("valid");
        assert_eq!(r.requests["cpu"], q("250m"));
        assert_eq!(r.requests["memory"].to_string(), "128Mi");
        assert_eq!(r.requests["storage"].to_string(), "1536Mi");
        assert_eq!(r.limits["cpu"].to_string(), "500m");
        assert_eq!(r.limits["memory"].to_string(), "1");
        assert_eq!(r.limits["ephemeral"].to_string(), "1k");
        assert_eq!(r.limits["gpu"].to_string(), "2");
        assert_eq!(r.limits["nil"].to_string(), "0");
        let out = serde_yaml_ng::to_string(&r).expect("serializes");
        assert_eq!(
            out,
            "requests:\n  cpu: 250m\n  memory: 128Mi\n  storage: 1536Mi\n\
             limits:\n  cpu: 500m\n  ephemeral: 1k\n  gpu: '2'\n  memory: '1'\n  nil: '0'\n"
        );
        let back: Resources = serde_yaml_ng::from_str(&out).expect("round trip");
        assert_eq!(back, r);
    }

    #[test]
    fn yaml_errors_name_the_input() {
        let err = serde_yaml_ng::from_str::<Resources>("requests:\n  memory: 1KB\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("invalid quantity \"1KB\""), "{message}");
        let err = serde_yaml_ng::from_str::<Resources>("requests:\n  cpu: true\n").unwrap_err();
        assert!(err.to_string().contains("a quantity"), "{err}");
        let err = serde_yaml_ng::from_str::<Resources>("requests:\n  cpu: .nan\n").unwrap_err();
        assert!(err.to_string().contains("not a finite number"), "{err}");
    }

    #[test]
    fn json_strings_numbers_and_whitespace() {
        // TestJSONWhitespace.
        for (json, expected) in [
            (r#"" 1""#, "1"),
            (r#""1 ""#, "1"),
            ("1", "1"),
            (" 1", "1"),
            ("1 ", "1"),
            ("10", "10"),
            ("-1", "-1"),
            (" -1", "-1"),
        ] {
            let quantity: Quantity =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(quantity.to_string(), expected, "{json} ({WHITESPACE})");
        }
        let quantity: Quantity = serde_json::from_str("0.25").expect("number");
        assert_eq!(quantity.to_string(), "250m");
        // Go writes 1e-7 as "1e-07": a decimal exponent, as here.
        let quantity: Quantity = serde_json::from_str("1e-7").expect("number");
        assert_eq!(quantity.to_string(), "100e-9");
        let quantity: Quantity = serde_json::from_str("18446744073709551615").expect("u64");
        assert_eq!(quantity.as_i64(), None);
        assert_eq!(quantity.to_string(), "18446744073709551615");
        let quantity: Quantity = serde_json::from_str("null").expect("null is zero");
        assert!(quantity.is_zero());
        assert_eq!(
            serde_json::to_string(&q("1.5Gi")).expect("serializes"),
            r#""1536Mi""#
        );
        assert_eq!(
            serde_json::to_string(&q("+1")).expect("serializes"),
            r#""+1""#
        );
        assert!(serde_json::from_str::<Quantity>(r#""1 Gi""#).is_err());
        assert!(serde_json::from_str::<Quantity>("[1]").is_err());
    }

    #[test]
    fn go_float_text_matches_encoding_json() {
        assert_eq!(go_float_text(0.5), "0.5");
        assert_eq!(go_float_text(100.0), "100");
        assert_eq!(go_float_text(0.000001), "0.000001");
        assert_eq!(go_float_text(0.0000001), "1e-7");
        assert_eq!(go_float_text(1e21), "1e21");
        assert_eq!(
            go_float_text(123456789012345680000.0),
            "123456789012345680000"
        );
        assert_eq!(go_float_text(-0.0), "-0");
    }

    #[test]
    fn postcard_round_trip() {
        for s in ["250m", "1.5Gi", "+1", "12e6", "0", "-1n", "9Ei"] {
            let original = q(s);
            let bytes = postcard::to_allocvec(&original).expect("serializes");
            let back: Quantity = postcard::from_bytes(&bytes).expect("deserializes");
            assert_eq!(back, original);
            assert_eq!(back.to_string(), original.to_string());
        }
        // As through JSON in Kubernetes, the format is whatever the printed text implies:
        // "9Ei" prints as 9223372036854775807, which reads back as decimal SI.
        let back: Quantity =
            postcard::from_bytes(&postcard::to_allocvec(&q("1.5Gi")).expect("ser")).expect("de");
        assert_eq!(back.format(), Format::BinarySI);
    }

    #[test]
    fn display_pads_and_debug_shows_the_text() {
        assert_eq!(format!("{:>6}|", q("1Gi")), "   1Gi|");
        assert_eq!(
            format!("{:?}", q("1.5Gi")),
            "Quantity(\"1536Mi\", BinarySI)"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_format() -> impl Strategy<Value = Format> {
            prop_oneof![
                Just(Format::DecimalSI),
                Just(Format::BinarySI),
                Just(Format::DecimalExponent)
            ]
        }

        proptest! {
            #[test]
            fn printing_round_trips(
                value in any::<i64>(),
                scale in -12i32..30,
                format in any_format(),
            ) {
                // Parsing caps binary SI at 2^63-1, so larger ones cannot round-trip (nor
                // do they in Kubernetes): keep binary ones within the cap.
                let (value, scale) = match format {
                    Format::BinarySI => (value.max(-i64::MAX), scale.min(0)),
                    _ => (value, scale),
                };
                let original = Quantity::new_scaled(value, scale).with_format(format);
                let printed = original.to_string();
                let back: Quantity = printed.parse().expect("prints valid quantities");
                prop_assert_eq!(&back, &original);
                // A binary-SI value printed without a binary suffix reads back as decimal
                // SI (as in Kubernetes) and may then print differently, but only once.
                if format != Format::BinarySI || printed.ends_with('i') {
                    prop_assert_eq!(back.to_string(), printed);
                }
                let reprinted = back.to_string();
                let again: Quantity = reprinted.parse().expect("prints valid quantities");
                prop_assert_eq!(again.to_string(), reprinted);
            }

            #[test]
            fn order_matches_exact_arithmetic(
                a in any::<i64>(),
                sa in -9i32..10,
                b in any::<i64>(),
                sb in -9i32..10,
            ) {
                let (x, y) = (Quantity::new_scaled(a, sa), Quantity::new_scaled(b, sb));
                let difference = x.checked_sub(&y).expect("64-bit values at these scales fit");
                prop_assert_eq!(x.cmp(&y), difference.signum().cmp(&0));
                prop_assert_eq!(x == y, difference.is_zero());
            }

            #[test]
            fn parse_never_panics_on_anything(s in "\\PC{0,20}") {
                let _ = s.parse::<Quantity>();
            }

            #[test]
            fn parse_never_panics(s in "[-+0-9.eEinumkKMGTP ]{0,24}") {
                if let Ok(quantity) = s.parse::<Quantity>() {
                    let again: Quantity =
                        quantity.to_string().parse().expect("prints valid quantities");
                    prop_assert_eq!(again, quantity);
                }
            }
        }
    }
}
