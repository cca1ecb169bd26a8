//! `booking.validate` (form filling) and `booking.create` (the appointment itself).
//!
//! Both run the same checks over `vehicle_number`, `dealer_id`, `service_type`, `booking_date` and
//! `booking_time` ([`check`]):
//! - the vehicle number is an Indian registration number (normalised; the normalised value is written
//!   back to the session);
//! - the dealer exists and is a service centre; the service type is on the price list;
//! - the date is a real date, after today in the dealer's time zone, at most 60 days ahead, on a day
//!   the dealer is open;
//! - the time is on a slot boundary inside opening hours, and the slot still has room.
//!
//! `booking.validate` checks only what has been collected and answers with every bad parameter marked
//! `INVALID` (value cleared) and one re-prompt that says what is wrong and what would be right; valid
//! values are left alone. `booking.create` checks everything again (the agent may skip validation),
//! then books:
//! - locally through [`crate::store::bookings::create`], which never double-books and is idempotent
//!   per Dialogflow request (a retried call gets the same booking id) — right for one instance
//!   (`--max-instances=1`);
//! - or, when `BOOKING_API_URL` is set, through the remote booking API
//!   ([`crate::clients::booking_api`]), with the same request key as its `Idempotency-Key`, so many
//!   instances share one booking system. Its answers map to the same replies: 409 is "just taken"
//!   with `booking_time` rejected, 400/422 rejects the field it names, and an API that cannot be
//!   reached gets a graceful "try again" answer before the deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan};

use crate::clients::booking_api::{BookingApiClient, BookingApiError, BookingRequest};
use crate::cx::WebhookResponse;
use crate::domain::VehicleNumber;
use crate::store::Store;
use crate::store::bookings::{self, NewBooking, Outcome};
use crate::store::queries::{self, Dealer, DealerKind};

use super::{Call, Handler, HandlerError, HandlerFuture, reject};

/// How far ahead a booking may be made.
pub const MAX_DAYS_AHEAD: i64 = 60;
/// How `booking.create` says a slot filled up.
const TAKEN: &str = "was just taken";
/// Free slots suggested when the chosen one is full.
const SUGGESTIONS: usize = 3;

/// A parameter that failed a check, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    param: &'static str,
    message: String,
}

/// The values that passed, and the problems found.
#[derive(Debug, Default)]
struct Checked {
    vehicle: Option<VehicleNumber>,
    vehicle_rewritten: bool,
    dealer: Option<Dealer>,
    service: Option<(String, String)>,
    date: Option<Date>,
    time: Option<Time>,
    problems: Vec<Problem>,
}

impl Checked {
    fn problem(&mut self, param: &'static str, message: String) {
        self.problems.push(Problem { param, message });
    }
}

fn long_date(date: Date) -> String {
    date.strftime("%A, %-d %B %Y").to_string()
}

fn short_date(date: Date) -> String {
    date.strftime("%-d %B").to_string()
}

/// Today's date where the dealer is.
fn today_at(dealer: Option<&Dealer>, now: Timestamp) -> Date {
    let zone = dealer.map_or("Asia/Kolkata", |d| d.time_zone.as_str());
    now.in_tz(zone)
        .map(|z| z.date())
        .unwrap_or_else(|_| now.in_tz("UTC").map(|z| z.date()).unwrap_or_default())
}

/// Slot start times of a dealer's day.
fn slots(dealer: &Dealer) -> Vec<Time> {
    let hours = &dealer.hours;
    let step = i64::from(hours.slot_minutes.max(1));
    let mut out = Vec::new();
    let mut t = hours.opens;
    while let Ok(end) = t.checked_add(step.minutes()) {
        // `checked_add` wraps past midnight on a civil time; stop at closing or at a wrap.
        if end > hours.closes || end <= t {
            break;
        }
        out.push(t);
        t = end;
    }
    out
}

/// Runs every check; with `require_all`, a missing parameter is a problem too.
fn check(
    call: &Call,
    store: &Store,
    now: Timestamp,
    require_all: bool,
) -> Result<Checked, HandlerError> {
    let params = call.params();
    let mut c = Checked::default();
    let missing = |c: &mut Checked, param: &'static str, what: &str| {
        if require_all {
            c.problem(param, format!("I still need {what}."));
        }
    };

    match params.text("vehicle_number") {
        Ok(Some(text)) => match VehicleNumber::parse(&text) {
            Some(v) => {
                c.vehicle_rewritten = v.as_str() != text;
                c.vehicle = Some(v);
            }
            None => c.problem(
                "vehicle_number",
                format!(
                    "\"{text}\" isn't a vehicle registration number I recognise. It should look \
                     like MH 12 AB 1234."
                ),
            ),
        },
        Ok(None) => missing(
            &mut c,
            "vehicle_number",
            "your vehicle's registration number",
        ),
        Err(_) => c.problem(
            "vehicle_number",
            "I didn't catch the registration number. It should look like MH 12 AB 1234.".into(),
        ),
    }

    match params.text("dealer_id") {
        Ok(Some(id)) => match store.read(|conn| queries::dealer(conn, &id))? {
            Some(d) if d.kind == DealerKind::Service => c.dealer = Some(d),
            Some(d) => c.problem(
                "dealer_id",
                format!(
                    "{} is a showroom and doesn't take service bookings. Please pick a service \
                     centre.",
                    d.name
                ),
            ),
            None => c.problem(
                "dealer_id",
                format!("I couldn't find the service centre \"{id}\". Service centre ids look like D-PUN-01."),
            ),
        },
        Ok(None) => missing(&mut c, "dealer_id", "the service centre"),
        Err(_) => c.problem("dealer_id", "I didn't catch the service centre.".into()),
    }

    match params.text("service_type") {
        Ok(Some(text)) => match store.read(|conn| queries::resolve_service(conn, &text))? {
            Some(service) => c.service = Some(service),
            None => {
                let names = store.read(queries::service_names)?;
                c.problem(
                    "service_type",
                    format!(
                        "I don't know the service \"{text}\". I can book: {}.",
                        names.join(", ")
                    ),
                );
            }
        },
        Ok(None) => missing(&mut c, "service_type", "the kind of service"),
        Err(_) => c.problem("service_type", "I didn't catch the kind of service.".into()),
    }

    let today = today_at(c.dealer.as_ref(), now);
    let first = today.tomorrow().unwrap_or(today);
    let last = today.checked_add(MAX_DAYS_AHEAD.days()).unwrap_or(today);
    match params.date("booking_date") {
        Ok(Some(date)) if date <= today => c.problem(
            "booking_date",
            format!(
                "{} has already passed. Please choose a date between {} and {}.",
                short_date(date),
                short_date(first),
                short_date(last)
            ),
        ),
        Ok(Some(date)) if date > last => c.problem(
            "booking_date",
            format!(
                "I can only book up to {MAX_DAYS_AHEAD} days ahead. Please choose a date between {} \
                 and {}.",
                short_date(first),
                short_date(last)
            ),
        ),
        Ok(Some(date)) => match &c.dealer {
            Some(d) if !d.hours.open_on(date.weekday()) => c.problem(
                "booking_date",
                format!(
                    "{} is closed on {}s. It's open {}. Which other day suits you?",
                    d.name,
                    date.strftime("%A"),
                    d.hours.summary()
                ),
            ),
            _ => c.date = Some(date),
        },
        Ok(None) => missing(&mut c, "booking_date", "the date"),
        Err(e) => c.problem(
            "booking_date",
            format!("That date doesn't exist ({}). Which date would you like?", e.problem),
        ),
    }

    match params.time("booking_time") {
        Ok(Some(time)) => match &c.dealer {
            Some(d) => {
                let day = slots(d);
                if !day.contains(&time) {
                    let (first, last) = (day.first(), day.last());
                    c.problem(
                        "booking_time",
                        match (first, last) {
                            (Some(first), Some(last)) => format!(
                                "{} takes appointments every {} minutes from {} to {}.",
                                d.name,
                                d.hours.slot_minutes,
                                first.strftime("%H:%M"),
                                last.strftime("%H:%M")
                            ),
                            _ => format!("{} has no appointment slots.", d.name),
                        },
                    );
                } else if let Some(date) = c.date {
                    let booked = store.read(|conn| bookings::booked_by_slot(conn, &d.id, date))?;
                    if is_full(d, &booked, time) {
                        // At booking time the user had been offered this slot: it was just taken.
                        let verb = if require_all {
                            TAKEN
                        } else {
                            "is fully booked"
                        };
                        c.problem("booking_time", full_message(d, date, time, &booked, verb));
                    } else {
                        c.time = Some(time);
                    }
                } else {
                    c.time = Some(time);
                }
            }
            None => c.time = Some(time),
        },
        Ok(None) => missing(&mut c, "booking_time", "the time"),
        Err(_) => c.problem(
            "booking_time",
            "I didn't catch the time. Which time would you like, for example 10:30?".into(),
        ),
    }
    Ok(c)
}

fn is_full(dealer: &Dealer, booked: &HashMap<String, i64>, time: Time) -> bool {
    let taken = booked.get(&bookings::slot_text(time)).copied().unwrap_or(0);
    taken >= i64::from(dealer.hours.slot_capacity)
}

/// "Sorry, the 10:30 slot on 14 March at X {is fully booked}. Free times nearby: 10:00, 11:00."
fn full_message(
    dealer: &Dealer,
    date: Date,
    time: Time,
    booked: &HashMap<String, i64>,
    verb: &str,
) -> String {
    let mut free: Vec<Time> = slots(dealer)
        .into_iter()
        .filter(|t| !is_full(dealer, booked, *t))
        .collect();
    let minutes = |t: &Time| i32::from(t.hour()) * 60 + i32::from(t.minute());
    free.sort_by_key(|t| (minutes(t) - minutes(&time)).abs());
    free.truncate(SUGGESTIONS);
    free.sort();
    let mut text = format!(
        "Sorry, the {} slot on {} at {} {verb}.",
        time.strftime("%H:%M"),
        short_date(date),
        dealer.name
    );
    if free.is_empty() {
        text.push_str(" That day is full; please choose another date.");
    } else {
        let times: Vec<String> = free
            .iter()
            .map(|t| t.strftime("%H:%M").to_string())
            .collect();
        text.push_str(&format!(" Free times nearby: {}.", times.join(", ")));
    }
    text
}

/// The answer for problems found: each parameter rejected, one re-prompt saying why.
fn reprompt(call: &Call, mut response: WebhookResponse, problems: &[Problem]) -> WebhookResponse {
    let text: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    for p in problems {
        if call.params().has(p.param) {
            response = reject(call, response, p.param);
        }
    }
    response.text(text.join(" "))
}

/// `booking.validate`.
pub struct Validate {
    store: Store,
}

impl Validate {
    /// The handler over `store`.
    pub fn new(store: Store) -> Self {
        Validate { store }
    }
}

impl Handler for Validate {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move {
            let checked = check(call, &self.store, Timestamp::now(), false)?;
            let mut response = WebhookResponse::new();
            if let (Some(v), true) = (&checked.vehicle, checked.vehicle_rewritten) {
                response = response.set_param("vehicle_number", v.as_str());
            }
            if checked.problems.is_empty() {
                return Ok(response);
            }
            Ok(reprompt(call, response, &checked.problems))
        })
    }
}

/// Time kept back from the deadline for answering after a remote booking call.
const ANSWER_MARGIN: Duration = Duration::from_millis(200);

/// `booking.create`.
pub struct Create {
    store: Store,
    remote: Option<Arc<BookingApiClient>>,
}

impl Create {
    /// The handler: bookings go to `remote` when given, else into `store`.
    pub fn new(store: Store, remote: Option<Arc<BookingApiClient>>) -> Self {
        Create { store, remote }
    }
}

/// The confirmation answer, the same for local and remote bookings.
fn confirmed(
    service: &str,
    dealer: &Dealer,
    date: Date,
    time: Time,
    id: &str,
    status: &str,
) -> WebhookResponse {
    WebhookResponse::new()
        .text(format!(
            "Done! Your {} at {} is booked for {} at {}. Your booking id is {id}.",
            service.to_lowercase(),
            dealer.name,
            long_date(date),
            time.strftime("%H:%M"),
        ))
        .set_param("booking_id", id)
        .set_param("booking_status", status)
}

/// Our parameter for a field name the booking API reports.
fn param_for_field(field: &str) -> Option<&'static str> {
    match field {
        "vehicle_number" => Some("vehicle_number"),
        "dealer_id" => Some("dealer_id"),
        "service_type" => Some("service_type"),
        "date" | "booking_date" => Some("booking_date"),
        "time" | "booking_time" => Some("booking_time"),
        _ => None,
    }
}

impl Create {
    /// Books through the remote API and turns its answer into a reply.
    async fn book_remotely(
        &self,
        api: &BookingApiClient,
        call: &Call,
        new: &NewBooking,
        dealer: &Dealer,
        service: &str,
    ) -> WebhookResponse {
        let request = BookingRequest {
            vehicle_number: new.vehicle.as_str().to_owned(),
            dealer_id: new.dealer_id.clone(),
            service_type: new.service_key.clone(),
            car_model: new.car_model.clone(),
            date: new.date,
            time: new.time,
            session_id: new.session_id.clone(),
        };
        let budget = call.remaining().saturating_sub(ANSWER_MARGIN);
        match api.create(&request, &new.request_key, budget).await {
            Ok(c) => confirmed(
                service,
                dealer,
                new.date,
                new.time,
                &c.booking_id,
                &c.status,
            ),
            Err(BookingApiError::SlotTaken) => {
                let problem = Problem {
                    param: "booking_time",
                    message: format!(
                        "Sorry, the {} slot on {} at {} {TAKEN}. Which other time would suit you?",
                        new.time.strftime("%H:%M"),
                        short_date(new.date),
                        dealer.name
                    ),
                };
                reprompt(call, WebhookResponse::new(), &[problem])
            }
            Err(BookingApiError::Rejected { field, message }) => {
                let text = format!("The booking system couldn't accept that: {message}");
                match field.as_deref().and_then(param_for_field) {
                    Some(param) => reprompt(
                        call,
                        WebhookResponse::new(),
                        &[Problem {
                            param,
                            message: text,
                        }],
                    ),
                    None => WebhookResponse::new().text(text),
                }
            }
            // The client has logged these with their causes.
            Err(
                BookingApiError::Unauthorized(_)
                | BookingApiError::Unavailable(_)
                | BookingApiError::Protocol(_),
            ) => WebhookResponse::new().text(
                "Sorry, I can't reach the booking system right now. Please try again in a moment.",
            ),
        }
    }
}

/// The key that makes a retried call find the booking it made: Dialogflow retries with the same
/// session and `detectIntentResponseId`. Without an id, the booking's own details stand in.
fn request_key(call: &Call, booking: &NewBooking) -> String {
    let session = call.request.session_id();
    let response_id = call.request.detect_intent_response_id.trim();
    if response_id.is_empty() {
        format!(
            "{session}/{}/{}/{}/{}",
            booking.vehicle,
            booking.dealer_id,
            booking.date,
            bookings::slot_text(booking.time)
        )
    } else {
        format!("{session}/{response_id}")
    }
}

impl Handler for Create {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move {
            let now = Timestamp::now();
            let checked = check(call, &self.store, now, true)?;
            if !checked.problems.is_empty() {
                return Ok(reprompt(call, WebhookResponse::new(), &checked.problems));
            }
            let (Some(vehicle), Some(dealer), Some((service_key, service)), Some(date), Some(time)) = (
                checked.vehicle,
                checked.dealer,
                checked.service,
                checked.date,
                checked.time,
            ) else {
                return Err(HandlerError::msg(
                    "booking checks passed without every value",
                ));
            };
            let mut new = NewBooking {
                request_key: String::new(),
                dealer_id: dealer.id.clone(),
                date,
                time,
                vehicle,
                service_key,
                car_model: call.params().text("car_model").ok().flatten(),
                session_id: call.request.session_id().to_owned(),
            };
            new.request_key = request_key(call, &new);
            if let Some(api) = &self.remote {
                return Ok(self.book_remotely(api, call, &new, &dealer, &service).await);
            }
            if self.store.is_read_only() {
                return Ok(WebhookResponse::new().text(
                    "Sorry, I can't take bookings right now. Please call the service centre \
                     directly.",
                ));
            }
            let outcome = self
                .store
                .write(move |conn| bookings::create(conn, &new, now))
                .await?;
            match outcome {
                Outcome::Confirmed { booking, replayed } => {
                    if replayed {
                        tracing::info!(booking_id = %booking.id, "booking call repeated: same booking returned");
                    }
                    Ok(confirmed(
                        &service,
                        &dealer,
                        booking.date,
                        booking.time,
                        &booking.id,
                        &booking.status,
                    ))
                }
                Outcome::SlotFull => {
                    let booked = self
                        .store
                        .read(|conn| bookings::booked_by_slot(conn, &dealer.id, date))?;
                    let problem = Problem {
                        param: "booking_time",
                        message: full_message(&dealer, date, time, &booked, TAKEN),
                    };
                    Ok(reprompt(call, WebhookResponse::new(), &[problem]))
                }
                Outcome::UnknownDealer => Err(HandlerError::msg(format!(
                    "dealer {} vanished between check and booking",
                    dealer.id
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::OpeningHours;
    use jiff::civil::{Weekday, time};

    fn dealer(opens: Time, closes: Time, slot_minutes: i32) -> Dealer {
        Dealer {
            id: "D-TST-01".into(),
            name: "Test".into(),
            kind: DealerKind::Service,
            city: "Pune".into(),
            postal_code: "411001".into(),
            address: "x".into(),
            phone: "+91".into(),
            time_zone: "Asia/Kolkata".into(),
            hours: OpeningHours {
                days: vec![Weekday::Monday],
                opens,
                closes,
                slot_minutes,
                slot_capacity: 1,
            },
        }
    }

    #[test]
    fn slots_fit_inside_opening_hours() {
        let d = dealer(time(9, 0, 0, 0), time(11, 0, 0, 0), 30);
        let s: Vec<String> = slots(&d)
            .iter()
            .map(|t| t.strftime("%H:%M").to_string())
            .collect();
        assert_eq!(s, ["09:00", "09:30", "10:00", "10:30"]);
        let late = dealer(time(22, 0, 0, 0), time(23, 59, 0, 0), 60);
        assert_eq!(slots(&late), vec![time(22, 0, 0, 0)]);
    }

    #[test]
    fn full_slots_suggest_the_nearest_free_times() {
        let d = dealer(time(9, 0, 0, 0), time(12, 0, 0, 0), 30);
        let booked: HashMap<String, i64> =
            [("10:00".to_string(), 1), ("10:30".to_string(), 1)].into();
        let day = jiff::civil::date(2031, 3, 14);
        let text = full_message(&d, day, time(10, 0, 0, 0), &booked, "is fully booked");
        assert_eq!(
            text,
            "Sorry, the 10:00 slot on 14 March at Test is fully booked. Free times nearby: 09:00, \
             09:30, 11:00."
        );
    }
}
