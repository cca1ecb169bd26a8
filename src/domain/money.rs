//! Money is integer minor units (paise, cents) with an ISO 4217 code, everywhere; it becomes text
//! only at the edge, through [`Money`]'s `Display` (Indian digit grouping for INR).

use std::fmt;

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
