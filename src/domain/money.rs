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
        self.render(&mut [0; RENDERED], Grouping::None, "")
            .to_owned()
    }

    /// Writes the amount into `buf` from its end: sign, `prefix`, the whole units grouped as
    /// asked, two decimals. Returns the text (ASCII digits, commas and `prefix`).
    fn render<'b>(&self, buf: &'b mut [u8; RENDERED], grouping: Grouping, prefix: &str) -> &'b str {
        let mut at = RENDERED;
        let mut put = |b: u8| {
            at -= 1;
            buf[at] = b;
        };
        let abs = self.minor.unsigned_abs();
        put(b'0' + (abs % 10) as u8);
        put(b'0' + (abs / 10 % 10) as u8);
        put(b'.');
        let mut whole = abs / 100;
        let mut written = 0;
        loop {
            let comma = match grouping {
                Grouping::None => false,
                Grouping::Thousands => written > 0 && written % 3 == 0,
                // 1,23,45,678: three digits, then pairs.
                Grouping::Indian => written == 3 || (written > 3 && (written - 3) % 2 == 0),
            };
            if comma {
                put(b',');
            }
            put(b'0' + (whole % 10) as u8);
            written += 1;
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        for &b in prefix.as_bytes().iter().rev() {
            put(b);
        }
        if self.minor < 0 {
            put(b'-');
        }
        // Only ASCII digits, commas, '.', '-' and the UTF-8 `prefix`, each written whole.
        std::str::from_utf8(&buf[at..]).unwrap_or("?")
    }

    /// Adds two amounts of the same currency (`None` on a currency mismatch or overflow).
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Money::new(minor, self.currency))
    }
}

/// Room for any `i64` amount rendered with separators and a prefix (19 digits, 9 commas, a point,
/// 2 decimals, a sign and a 4-byte prefix: 36 bytes).
const RENDERED: usize = 48;

/// How [`Money::render`] groups the whole units.
#[derive(Clone, Copy)]
enum Grouping {
    /// `12345678`
    None,
    /// `12,345,678`
    Thousands,
    /// `1,23,45,678` (INR)
    Indian,
}

impl fmt::Display for Money {
    /// `₹1,23,456.78`, `-$12.00`, `CHF 5.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rendered into a stack buffer and written once: this runs in every account answer.
        let grouping = if self.currency == Currency::INR {
            Grouping::Indian
        } else {
            Grouping::Thousands
        };
        let mut code = [0u8; 4];
        let prefix = match self.currency.symbol() {
            Some(symbol) => symbol,
            None => {
                code[..3].copy_from_slice(self.currency.code().as_bytes());
                code[3] = b' ';
                std::str::from_utf8(&code).unwrap_or("")
            }
        };
        f.write_str(self.render(&mut [0; RENDERED], grouping, prefix))
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
        assert_eq!(Money::new(0, Currency::INR).decimal(), "0.00");
        assert_eq!(
            Money::new(i64::MIN, Currency::INR).to_string(),
            "-₹92,23,37,20,36,85,47,758.08"
        );
        assert_eq!(
            Money::new(i64::MAX, Currency::parse("CHF").unwrap()).to_string(),
            "CHF 92,233,720,368,547,758.07"
        );
        assert_eq!(Money::new(-100_000, usd.currency).to_string(), "-$1,000.00");
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
