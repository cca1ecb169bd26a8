//! The price list: car models, service types, fuel variants and prices.

use std::fmt;

use super::Money;

/// A car model on the price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarModel {
    /// Its lookup key (`nexon`).
    pub key: String,
    /// Its display name (`Nexon`).
    pub name: String,
}

/// The key of a service type on the price list (`periodic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceKey(String);

impl ServiceKey {
    /// The key the catalog gave (keys come from the catalog, never from the user).
    pub fn new(key: impl Into<String>) -> ServiceKey {
        ServiceKey(key.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service type on the price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceType {
    /// Its key.
    pub key: ServiceKey,
    /// Its display name (`Periodic service`).
    pub name: String,
}

/// Fuel a price applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fuel {
    /// Petrol.
    Petrol,
    /// Diesel.
    Diesel,
    /// Compressed natural gas.
    Cng,
    /// Battery electric.
    Electric,
}

impl Fuel {
    /// The value the store keeps (`petrol`, `diesel`, `cng`, `electric`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fuel::Petrol => "petrol",
            Fuel::Diesel => "diesel",
            Fuel::Cng => "cng",
            Fuel::Electric => "electric",
        }
    }

    /// The stored value back (`None` for anything else).
    pub fn from_stored(value: &str) -> Option<Fuel> {
        [Fuel::Petrol, Fuel::Diesel, Fuel::Cng, Fuel::Electric]
            .into_iter()
            .find(|f| f.as_str() == value)
    }

    /// The word for messages (`petrol`, `CNG`).
    pub fn label(self) -> &'static str {
        match self {
            Fuel::Cng => "CNG",
            other => other.as_str(),
        }
    }
}

/// One line of the price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// Fuel variant.
    pub fuel: Fuel,
    /// Parts cost.
    pub parts: Money,
    /// Labour cost.
    pub labour: Money,
}

impl Price {
    /// Parts plus labour (`None` if the row mixes currencies or overflows).
    pub fn total(&self) -> Option<Money> {
        self.parts.checked_add(self.labour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuels_round_trip_through_the_store_value() {
        for fuel in [Fuel::Petrol, Fuel::Diesel, Fuel::Cng, Fuel::Electric] {
            assert_eq!(Fuel::from_stored(fuel.as_str()), Some(fuel));
        }
        assert_eq!(Fuel::Cng.as_str(), "cng");
        assert_eq!(Fuel::Cng.label(), "CNG");
        assert_eq!(Fuel::from_stored("CNG"), None);
    }
}
