//! The business: accounts, money, dealers, the price list, vehicles and bookings, and the user's
//! vocabulary for them.
//!
//! Parse, don't validate: a value of these types is known to be well-formed ([`AccountId::parse`],
//! [`VehicleNumber::parse`], [`DealerId::parse`], [`SlotTime`]), so the store and the handlers never
//! re-check shapes, and a bad value is turned away where it enters. Money is integer minor units.
//!
//! This module depends on nothing of ours: the store maps rows into these types, the handlers
//! speak them, and neither SQL nor Dialogflow appears here.

mod account;
mod booking;
mod catalog;
mod dealer;
mod money;
pub mod pin;
mod vehicle;
pub mod vocabulary;

pub use account::{Account, AccountId, Transaction, TransactionLimit};
pub use booking::{
    Booking, BookingDraft, BookingId, BookingOutcome, BookingStatus, MAX_DAYS_AHEAD, RequestKey,
    SlotCounts, SlotTime,
};
pub use catalog::{CarModel, Fuel, Price, ServiceKey, ServiceType};
pub use dealer::{
    City, Dealer, DealerId, DealerKind, HOME_TIME_ZONE, OpeningHours, booking_window, day_name,
    home_time_zone, home_today, parse_day,
};
pub use money::{Currency, Money};
pub use pin::{Pin, Subject};
pub use vehicle::VehicleNumber;
