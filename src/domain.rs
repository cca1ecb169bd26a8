//! Domain newtypes: parse, don't validate. A value of these types is known to be well-formed, so the
//! store and the handlers never re-check shapes, and a bad value is turned away where it enters.
//!
//! Money is integer minor units (paise, cents) with an ISO 4217 code, everywhere; it becomes text
//! only at the edge, through [`Money`]'s `Display` (Indian digit grouping for INR).

use std::fmt;

/// A customer account number: `A` followed by 4 to 8 digits, e.g. `A1001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Parses user input: trims, ignores case and inner spaces/hyphens (`a-1001` -> `A1001`).
    pub fn parse(input: &str) -> Option<AccountId> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect::<String>()
            .to_ascii_uppercase();
        let digits = compact.strip_prefix('A')?;
        ((4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(AccountId(compact))
    }

    /// The canonical form, e.g. `A1001`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// An amount of money: integer minor units and a currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Amount in minor units (e.g. paise); negative for debits.
    pub minor: i64,
    /// ISO 4217 code, e.g. `INR`.
    pub currency: Currency,
}

/// An ISO 4217 currency code (three ASCII uppercase letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Indian rupee, the demo data's currency.
    pub const INR: Currency = Currency(*b"INR");

    /// Parses a code such as `INR` or `usd`.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.trim().as_bytes();
        let upper: [u8; 3] = bytes.try_into().ok()?;
        upper
            .iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| Currency(upper.map(|b| b.to_ascii_uppercase())))
    }

    /// The code as text.
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    fn symbol(&self) -> Option<&'static str> {
        match &self.0 {
            b"INR" => Some("₹"),
            b"USD" => Some("$"),
            b"EUR" => Some("€"),
            b"GBP" => Some("£"),
            _ => None,
        }
    }
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// The amount as an exact decimal string in major units, e.g. `1234.50` (for session
    /// parameters: exact, unlike a JSON float).
    pub fn decimal(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// Adds two amounts of the same currency (`None` on a currency mismatch or overflow).
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Money::new(minor, self.currency))
    }
}

/// Groups the digits of `whole`: 1,23,45,678 (Indian) for INR, 12,345,678 otherwise.
fn group_digits(whole: u64, indian: bool) -> String {
    let digits = whole.to_string();
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 2);
    for (i, ch) in digits.chars().enumerate() {
        let left = len - i; // digits from here to the end
        let comma = i > 0
            && if indian {
                left == 3 || (left > 3 && (left - 3).is_multiple_of(2))
            } else {
                left.is_multiple_of(3)
            };
        if comma {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Money {
    /// `₹1,23,456.78`, `-$12.00`, `CHF 5.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let whole = group_digits(abs / 100, self.currency == Currency::INR);
        let cents = abs % 100;
        match self.currency.symbol() {
            Some(symbol) => write!(f, "{sign}{symbol}{whole}.{cents:02}"),
            None => write!(f, "{sign}{} {whole}.{cents:02}", self.currency.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_normalised_or_refused() {
        assert_eq!(AccountId::parse(" a1001 ").unwrap().as_str(), "A1001");
        assert_eq!(AccountId::parse("A-1001").unwrap().as_str(), "A1001");
        assert_eq!(
            AccountId::parse("A 10012345").unwrap().as_str(),
            "A10012345"
        );
        for bad in [
            "",
            "1001",
            "A10",
            "A123456789",
            "B1001",
            "A10O1",
            "A1001; drop",
        ] {
            assert!(AccountId::parse(bad).is_none(), "{bad}");
        }
    }

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

    #[test]
    fn money_formats_at_the_edge() {
        let inr = |m| Money::new(m, Currency::INR).to_string();
        assert_eq!(inr(0), "₹0.00");
        assert_eq!(inr(5), "₹0.05");
        assert_eq!(inr(99_900), "₹999.00");
        assert_eq!(inr(123_400), "₹1,234.00");
        assert_eq!(inr(12_345_678), "₹1,23,456.78");
        assert_eq!(inr(1_234_567_800), "₹1,23,45,678.00");
        assert_eq!(inr(-250_000), "-₹2,500.00");
        let usd = Money::new(123_456_789, Currency::parse("usd").unwrap());
        assert_eq!(usd.to_string(), "$1,234,567.89");
        let chf = Money::new(500, Currency::parse("CHF").unwrap());
        assert_eq!(chf.to_string(), "CHF 5.00");
        assert_eq!(Money::new(-5, Currency::INR).decimal(), "-0.05");
        assert_eq!(Money::new(12_345_678, Currency::INR).decimal(), "123456.78");
    }

    #[test]
    fn currencies_must_match_to_add() {
        let a = Money::new(100, Currency::INR);
        let b = Money::new(250, Currency::INR);
        assert_eq!(a.checked_add(b), Some(Money::new(350, Currency::INR)));
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert_eq!(a.checked_add(usd), None);
        assert!(Currency::parse("RUPEE").is_none());
        assert!(Currency::parse("12A").is_none());
    }
}
