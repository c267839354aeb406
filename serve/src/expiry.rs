//! The notAfter time of an X.509 certificate, for the expiry metric. A small DER walk over
//! `Certificate → tbsCertificate → validity` (RFC 5280, section 4.1) instead of a full X.509
//! parser: only lengths and the two time formats are read.

/// Unix seconds of the certificate's notAfter, or `None` when the DER does not read.
pub fn not_after(der: &[u8]) -> Option<u64> {
    let (cert, _) = element(der, 0x30)?;
    let (tbs, _) = element(cert, 0x30)?;
    let mut rest = tbs;
    // Optional [0] version.
    if rest.first() == Some(&0xa0) {
        rest = element(rest, 0xa0)?.1;
    }
    rest = element(rest, 0x02)?.1; // serialNumber
    rest = element(rest, 0x30)?.1; // signature
    rest = element(rest, 0x30)?.1; // issuer
    let (validity, _) = element(rest, 0x30)?;
    let after_not_before = skip_any(validity)?;
    let tag = *after_not_before.first()?;
    let (time, _) = element(after_not_before, tag)?;
    let text = std::str::from_utf8(time).ok()?;
    match tag {
        0x17 => parse_time(text, true),  // UTCTime YYMMDDHHMMSSZ
        0x18 => parse_time(text, false), // GeneralizedTime YYYYMMDDHHMMSSZ
        _ => None,
    }
}

/// The content of the element at the start of `input` with `tag`, and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let (len, header) = length(&input[1..])?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((input.get(start..end)?, input.get(end..)?))
}

fn skip_any(input: &[u8]) -> Option<&[u8]> {
    let tag = *input.first()?;
    element(input, tag).map(|(_, rest)| rest)
}

/// A DER length: (value, bytes it took).
fn length(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in input.get(1..=n)? {
        len = (len << 8) | usize::from(*b);
    }
    Some((len, 1 + n))
}

fn parse_time(text: &str, two_digit_year: bool) -> Option<u64> {
    let digits = text.strip_suffix('Z')?;
    let num = |s: &str| s.parse::<i64>().ok();
    let (year, rest) = if two_digit_year {
        let yy = num(digits.get(0..2)?)?;
        // RFC 5280: 50–99 are 19xx, 00–49 are 20xx.
        (
            if yy >= 50 { 1900 + yy } else { 2000 + yy },
            digits.get(2..)?,
        )
    } else {
        (num(digits.get(0..4)?)?, digits.get(4..)?)
    };
    let month = num(rest.get(0..2)?)?;
    let day = num(rest.get(2..4)?)?;
    let hour = num(rest.get(4..6)?)?;
    let minute = num(rest.get(6..8)?)?;
    let second = num(rest.get(8..10)?)?;
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-15T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_941_840_000));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(not_after(b"not der"), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
    }

    #[test]
    fn two_digit_years_follow_rfc_5280() {
        assert_eq!(parse_time("491231235959Z", true), Some(2_524_607_999));
        assert_eq!(
            parse_time("500101000000Z", true),
            None,
            "1950 is before the epoch"
        );
        assert_eq!(parse_time("700101000000Z", true), Some(0));
    }
}
