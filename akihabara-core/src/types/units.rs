//! Token quantities: [`Rao`] (the chain's integer unit) and [`Tao`] (the unit people type).
//!
//! 1 TAO = 10^9 rao. The two types never mix silently: there is no `Rao + Tao`,
//! and converting is always an explicit call ([`Tao::to_rao`], [`Rao::to_tao`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Rao per TAO.
pub const RAO_PER_TAO: u64 = 1_000_000_000;

/// An amount in rao, the chain's integer unit (10^-9 TAO).
///
/// Serialised as a plain JSON integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rao(pub u64);

impl Rao {
    /// Zero rao.
    pub const ZERO: Rao = Rao(0);

    /// The raw integer.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Converts to TAO (exact: a [`Tao`] holds whole rao).
    pub const fn to_tao(self) -> Tao {
        Tao { rao: self.0 }
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Rao) -> Option<Rao> {
        self.0.checked_add(other.0).map(Rao)
    }

    /// `self + other`, clamped at `u64::MAX` rao.
    pub fn saturating_add(self, other: Rao) -> Rao {
        Rao(self.0.saturating_add(other.0))
    }

    /// `self - other`, clamped at zero.
    pub fn saturating_sub(self, other: Rao) -> Rao {
        Rao(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Rao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rao", self.0)
    }
}

impl std::iter::Sum for Rao {
    /// Sums saturating at `u64::MAX`, so a sum of stakes never panics.
    fn sum<I: Iterator<Item = Rao>>(iter: I) -> Rao {
        iter.fold(Rao::ZERO, Rao::saturating_add)
    }
}

/// An amount in TAO, held exactly as whole rao.
///
/// Parsed from decimal text with at most nine fractional digits and printed the
/// same way, so `"0.000000001"` is exactly one rao and nothing is lost to floats.
///
/// ```
/// use akihabara_core::{Rao, Tao};
/// let t: Tao = "1000.5".parse().unwrap();
/// assert_eq!(t.to_rao(), Rao(1_000_500_000_000));
/// assert_eq!(t.to_string(), "1000.5");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tao {
    rao: u64,
}

impl Tao {
    /// Zero TAO.
    pub const ZERO: Tao = Tao { rao: 0 };

    /// Whole TAO, or `None` if it would not fit in `u64` rao.
    pub const fn from_whole(tao: u64) -> Option<Tao> {
        match tao.checked_mul(RAO_PER_TAO) {
            Some(rao) => Some(Tao { rao }),
            None => None,
        }
    }

    /// The same amount in rao.
    pub const fn to_rao(self) -> Rao {
        Rao(self.rao)
    }

    /// An approximation as `f64`, for display and statistics only.
    pub fn as_f64(self) -> f64 {
        self.rao as f64 / RAO_PER_TAO as f64
    }
}

impl fmt::Display for Tao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.rao / RAO_PER_TAO;
        let frac = self.rao % RAO_PER_TAO;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// Why a TAO amount could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaoParseError {
    /// Nothing to parse.
    #[error("empty TAO amount")]
    Empty,
    /// A character that is not a digit or a single decimal point.
    #[error("invalid TAO amount {0:?}: expected a non-negative decimal such as 1000 or 0.5")]
    Invalid(String),
    /// More than nine digits after the point (finer than one rao).
    #[error("TAO amount {0:?} has more than 9 decimal places (1 rao = 0.000000001 TAO)")]
    TooPrecise(String),
    /// Larger than `u64::MAX` rao.
    #[error("TAO amount {0:?} is too large")]
    Overflow(String),
}

impl FromStr for Tao {
    type Err = TaoParseError;

    fn from_str(s: &str) -> Result<Tao, TaoParseError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TaoParseError::Empty);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
            return Err(TaoParseError::Invalid(s.to_owned()));
        }
        if frac.len() > 9 {
            return Err(TaoParseError::TooPrecise(s.to_owned()));
        }
        let overflow = || TaoParseError::Overflow(s.to_owned());
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let frac_rao: u64 = if frac.is_empty() {
            0
        } else {
            // Pad to nine digits: "5" -> 500_000_000 rao.
            format!("{frac:0<9}").parse().map_err(|_| overflow())?
        };
        let rao = whole
            .checked_mul(RAO_PER_TAO)
            .and_then(|r| r.checked_add(frac_rao))
            .ok_or_else(overflow)?;
        Ok(Tao { rao })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, rao) in [
            ("0", 0),
            ("1", 1_000_000_000),
            ("0.000000001", 1),
            (".5", 500_000_000),
            ("12.", 12_000_000_000),
            ("18446744073.709551615", u64::MAX),
        ] {
            let t: Tao = text.parse().unwrap();
            assert_eq!(t.to_rao(), Rao(rao), "{text}");
        }
        assert_eq!(Rao(1_500_000_000).to_tao().to_string(), "1.5");
        assert_eq!(Rao(7).to_tao().to_string(), "0.000000007");
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!("".parse::<Tao>(), Err(TaoParseError::Empty));
        assert!(matches!(
            "-1".parse::<Tao>(),
            Err(TaoParseError::Invalid(_))
        ));
        assert!(matches!(
            "1e9".parse::<Tao>(),
            Err(TaoParseError::Invalid(_))
        ));
        assert!(matches!(".".parse::<Tao>(), Err(TaoParseError::Invalid(_))));
        assert!(matches!(
            "1.2.3".parse::<Tao>(),
            Err(TaoParseError::Invalid(_))
        ));
        assert!(matches!(
            "0.0000000001".parse::<Tao>(),
            Err(TaoParseError::TooPrecise(_))
        ));
        assert!(matches!(
            "18446744073.709551616".parse::<Tao>(),
            Err(TaoParseError::Overflow(_))
        ));
        assert!(matches!(
            "99999999999999999999999".parse::<Tao>(),
            Err(TaoParseError::Overflow(_))
        ));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(rao in any::<u64>()) {
            let t = Rao(rao).to_tao();
            prop_assert_eq!(t.to_string().parse::<Tao>().unwrap(), t);
        }
    }
}
