//! Integer Kubernetes quantities for extended resources.
//!
//! Extended resources must be whole numbers (the apiserver rejects `0.5` for them), so this parser
//! accepts plain digits with an optional binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal (`k`, `M`, `G`,
//! `T`) suffix and refuses anything fractional, negative or exponential with a typed error.

use thiserror::Error;

/// Why a quantity string is not a usable whole number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// Empty or non-numeric text.
    #[error("{value:?} is not a whole-number quantity")]
    NotANumber {
        /// The offending text.
        value: String,
    },
    /// A fraction such as `0.5` or `500m`.
    #[error("{value:?} is fractional; GPU quantities must be whole numbers")]
    Fractional {
        /// The offending text.
        value: String,
    },
    /// Larger than 2^63.
    #[error("{value:?} is too large")]
    TooLarge {
        /// The offending text.
        value: String,
    },
}

/// Parses a whole, non-negative quantity (`"4"`, `"16Gi"`, `"2k"`).
pub fn parse_whole(value: &str) -> Result<u64, QuantityError> {
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(QuantityError::NotANumber {
            value: value.to_string(),
        });
    }
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "m" => {
            return milli_to_whole(digits, value);
        }
        s if s.starts_with('.') => {
            return Err(QuantityError::Fractional {
                value: value.to_string(),
            });
        }
        _ => {
            return Err(QuantityError::NotANumber {
                value: value.to_string(),
            });
        }
    };
    let base: u64 = digits.parse().map_err(|_| QuantityError::TooLarge {
        value: value.to_string(),
    })?;
    base.checked_mul(multiplier)
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or_else(|| QuantityError::TooLarge {
            value: value.to_string(),
        })
}

/// `"2000m"` is the whole number 2; `"500m"` is fractional.
fn milli_to_whole(digits: &str, value: &str) -> Result<u64, QuantityError> {
    let milli: u64 = digits.parse().map_err(|_| QuantityError::TooLarge {
        value: value.to_string(),
    })?;
    if !milli.is_multiple_of(1000) {
        return Err(QuantityError::Fractional {
            value: value.to_string(),
        });
    }
    Ok(milli / 1000)
}

/// Parses a CPU quantity into millicores (`"1"` → 1000, `"250m"` → 250).
pub fn parse_cpu_milli(value: &str) -> Result<u64, QuantityError> {
    let text = value.trim();
    if let Some(milli) = text.strip_suffix('m') {
        return milli.parse().map_err(|_| QuantityError::NotANumber {
            value: value.to_string(),
        });
    }
    if let Some((whole, frac)) = text.split_once('.') {
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| QuantityError::NotANumber {
                value: value.to_string(),
            })?
        };
        let mut frac3 = frac.chars().take(3).collect::<String>();
        while frac3.len() < 3 {
            frac3.push('0');
        }
        let frac: u64 = frac3.parse().map_err(|_| QuantityError::NotANumber {
            value: value.to_string(),
        })?;
        return whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| too_large(value));
    }
    parse_whole(text)?
        .checked_mul(1000)
        .ok_or_else(|| too_large(value))
}

fn too_large(value: &str) -> QuantityError {
    QuantityError::TooLarge {
        value: value.to_string(),
    }
}

/// Parses a memory quantity into MiB, rounding up (`"1Gi"` → 1024).
pub fn parse_mem_mib(value: &str) -> Result<u64, QuantityError> {
    let bytes = parse_whole(value)?;
    Ok(bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_quantities_with_suffixes_parse() {
        for (text, want) in [
            ("4", 4),
            ("2k", 2000),
            ("1Ki", 1024),
            ("3Gi", 3 << 30),
            ("2000m", 2),
        ] {
            assert_eq!(parse_whole(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn fractions_and_garbage_are_refused_by_name() {
        assert!(matches!(
            parse_whole("0.5"),
            Err(QuantityError::Fractional { .. })
        ));
        assert!(matches!(
            parse_whole("500m"),
            Err(QuantityError::Fractional { .. })
        ));
        assert!(matches!(
            parse_whole("-1"),
            Err(QuantityError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_whole("four"),
            Err(QuantityError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_whole("1e3"),
            Err(QuantityError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_whole("99999999999Ti"),
            Err(QuantityError::TooLarge { .. })
        ));
    }

    #[test]
    fn cpu_and_memory_convert_to_milli_and_mib() {
        assert_eq!(parse_cpu_milli("250m"), Ok(250));
        assert_eq!(parse_cpu_milli("1.5"), Ok(1500));
        assert_eq!(parse_cpu_milli("2"), Ok(2000));
        assert_eq!(parse_mem_mib("1Gi"), Ok(1024));
        assert_eq!(parse_mem_mib("1"), Ok(1));
    }

    #[test]
    fn cpu_quantities_that_overflow_millicores_are_refused_by_name() {
        for text in [
            "18446744073709552",
            "18446744073709551615.5",
            "9223372036854775807",
        ] {
            assert_eq!(
                parse_cpu_milli(text),
                Err(QuantityError::TooLarge { value: text.into() }),
                "{text}"
            );
        }
        assert_eq!(
            parse_cpu_milli("9223372036854775"),
            Ok(9_223_372_036_854_775_000)
        );
    }
}
