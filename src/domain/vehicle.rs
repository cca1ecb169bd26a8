//! Vehicles: the Indian registration number, normalised.

use std::fmt;

/// Indian state and union-territory codes that registration numbers start with.
const STATE_CODES: &[&str] = &[
    "AN", "AP", "AR", "AS", "BR", "CG", "CH", "DD", "DL", "DN", "GA", "GJ", "HP", "HR", "JH", "JK",
    "KA", "KL", "LA", "LD", "MH", "ML", "MN", "MP", "MZ", "NL", "OD", "OR", "PB", "PY", "RJ", "SK",
    "TG", "TN", "TR", "TS", "UK", "UP", "WB",
];

/// An Indian vehicle registration number, normalised: `MH 12 ab-1234` -> `MH12AB1234`.
///
/// Accepted shapes: state code, 1-2 digit RTO code, 0-3 letter series, 4 digit number
/// (`MH12AB1234`, `DL3CAB1234`, `KA01M1234`, `GJ011234`), and the Bharat series `22BH1234AA`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VehicleNumber(String);

impl VehicleNumber {
    /// Parses user input, ignoring case, spaces, hyphens and dots.
    pub fn parse(input: &str) -> Option<VehicleNumber> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.'))
            .collect::<String>()
            .to_ascii_uppercase();
        let ok = Self::is_state_series(&compact) || Self::is_bharat_series(&compact);
        ok.then_some(VehicleNumber(compact))
    }

    fn is_state_series(s: &str) -> bool {
        let b = s.as_bytes();
        if b.len() < 7 || b.len() > 11 || !STATE_CODES.contains(&s.get(..2).unwrap_or("")) {
            return false;
        }
        let rest = &b[2..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let series = rest[digits..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        // Without series letters the RTO code and the number run together (GJ 01 1234).
        let (rto, number) = if series == 0 {
            (digits.saturating_sub(4), &rest[digits.saturating_sub(4)..])
        } else {
            (digits, &rest[digits + series..])
        };
        (1..=2).contains(&rto)
            && series <= 3
            && number.len() == 4
            && number.iter().all(u8::is_ascii_digit)
            && number != b"0000"
    }

    fn is_bharat_series(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 10
            && b[..2].iter().all(u8::is_ascii_digit)
            && &b[2..4] == b"BH"
            && b[4..8].iter().all(u8::is_ascii_digit)
            && b[8..].iter().all(u8::is_ascii_alphabetic)
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VehicleNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicle_numbers_are_normalised_or_refused() {
        let ok = |input: &str, want: &str| {
            assert_eq!(
                VehicleNumber::parse(input).map(|v| v.0),
                Some(want.into()),
                "{input}"
            )
        };
        ok("MH 12 ab-1234", "MH12AB1234");
        ok("mh12ab1234", "MH12AB1234");
        ok("DL 3C AB 1234", "DL3CAB1234");
        ok("KA-01-M-1234", "KA01M1234");
        ok("GJ 01 1234", "GJ011234");
        ok("22 BH 1234 AA", "22BH1234AA");
        for bad in [
            "",
            "1234",
            "XX12AB1234",
            "MH123AB1234",
            "MH12ABCD1234",
            "MH12AB123",
            "MH12AB0000",
            "MH12AB12345",
        ] {
            assert!(VehicleNumber::parse(bad).is_none(), "{bad}");
        }
    }
}
