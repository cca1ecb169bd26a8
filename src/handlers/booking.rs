//! `booking.validate` (form filling) and `booking.create` (the appointment itself).
//!
//! Both run the same checks over `vehicle_number`, `dealer_id`, `service_type`, `booking_date` and
//! `booking_time`, one small function per field (`check` runs them in order and collects a [`Form`],
//! which `Form::draft` turns into a complete, typed [`BookingDraft`] or the list of problems):
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
//! - through the configured [`crate::store::bookings::BookingRepository`] (SQLite in the data file, or
//!   PostgreSQL shared by every instance), which never double-books, is idempotent per Dialogflow
//!   request (a retried call gets the same booking id), and writes nothing after the call's deadline;
//! - or, when `BOOKING_API_URL` is set, through the remote booking API
//!   ([`crate::clients::booking_api`]), with the same request key as its `Idempotency-Key`, so many
//!   instances share one booking system. Its answers map to the same replies: 409 is "just taken"
//!   with `booking_time` rejected, 400/422 rejects the field it names, and an API that cannot be
//!   reached gets a graceful "try again" answer before the deadline.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio::time::Instant;

use crate::clients::booking_api::{BookingApiClient, BookingApiError, BookingRequest};
use crate::cx::{Params, WebhookResponse};
use crate::domain::{
    BookingDraft, BookingOutcome, Dealer, DealerId, DealerKind, MAX_DAYS_AHEAD, RequestKey,
    ServiceType, SlotCounts, SlotTime, VehicleNumber, booking_window, home_today,
};
use crate::store::bookings::BookingError;

use super::{Call, Deps, HandlerError, Reply, ask, not_known, reject};

/// How `booking.create` says a slot filled up.
pub(crate) const TAKEN: &str = "was just taken";
/// Free slots suggested when the chosen one is full.
const SUGGESTIONS: usize = 3;
/// Said when the booking store cannot take a booking now.
const CANNOT_BOOK_TEXT: &str = "Sorry, I can't take bookings right now. Please try again in a few minutes or call the \
     service centre directly.";

/// A parameter that failed a check, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The parameter.
    pub param: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

/// What one field's check found.
enum Field<T> {
    /// A good value.
    Good(T),
    /// Not given (yet).
    Missing,
    /// Given but unusable: what to say.
    Bad(String),
    /// A good slot that holds its capacity already: what to say.
    Full(String),
}

/// Which handler is checking: validation leaves missing values alone and calls a full slot "fully
/// booked"; booking needs every value and calls it "just taken" (the user had been offered it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Validate,
    Create,
}

/// The booking form as collected so far: each good value, typed, and every problem found.
#[derive(Debug, Default)]
pub struct Form {
    vehicle: Option<VehicleNumber>,
    /// The user's spelling differs from the normalised number (write it back).
    vehicle_rewritten: bool,
    dealer: Option<Dealer>,
    service: Option<ServiceType>,
    date: Option<Date>,
    time: Option<SlotTime>,
    problems: Vec<Problem>,
    /// The chosen slot is full (a problem for `booking_time`, reported as a conflict by tools).
    slot_full: bool,
}

impl Form {
    fn take<T>(
        &mut self,
        mode: Mode,
        param: &'static str,
        what: &str,
        field: Field<T>,
    ) -> Option<T> {
        match field {
            Field::Good(value) => return Some(value),
            Field::Missing if mode == Mode::Create => self.problems.push(Problem {
                param,
                message: format!("I still need {what}."),
            }),
            Field::Missing => {}
            Field::Bad(message) => self.problems.push(Problem { param, message }),
            Field::Full(message) => {
                self.slot_full = true;
                self.problems.push(Problem { param, message });
            }
        }
        None
    }

    /// Every problem found, in field order.
    pub(crate) fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether the chosen slot is full (one of the problems says so).
    pub(crate) fn slot_full(&self) -> bool {
        self.slot_full
    }

    /// The vehicle number, normalised, when it was good.
    pub(crate) fn vehicle(&self) -> Option<&VehicleNumber> {
        self.vehicle.as_ref()
    }

    /// A complete, typed draft, or the problems that stop one. `session` and `response_id` make
    /// the request key (see [`RequestKey::new`]).
    pub(crate) fn draft(
        self,
        session: &str,
        response_id: &str,
        car_model: Option<String>,
    ) -> Result<(BookingDraft, Dealer, ServiceType), Vec<Problem>> {
        let (Some(vehicle), Some(dealer), Some(service), Some(date), Some(time), true) = (
            self.vehicle,
            self.dealer,
            self.service,
            self.date,
            self.time,
            self.problems.is_empty(),
        ) else {
            return Err(self.problems);
        };
        let request_key = RequestKey::new(session, response_id, || {
            format!("{vehicle}/{}/{date}/{time}", dealer.id)
        });
        let draft = BookingDraft {
            request_key,
            session_id: session.to_owned(),
            dealer: dealer.id.clone(),
            date,
            time,
            vehicle,
            service: service.key.clone(),
            car_model,
            capacity: dealer.hours.slot_capacity,
        };
        Ok((draft, dealer, service))
    }
}

fn long_date(date: Date) -> String {
    date.strftime("%A, %-d %B %Y").to_string()
}

fn short_date(date: Date) -> String {
    date.strftime("%-d %B").to_string()
}

fn vehicle(params: &Params<'_>) -> Field<(VehicleNumber, bool)> {
    match params.text("vehicle_number") {
        Ok(Some(text)) => match VehicleNumber::parse(&text) {
            Some(v) => {
                let rewritten = v.as_str() != text;
                Field::Good((v, rewritten))
            }
            None => Field::Bad(format!(
                "\"{text}\" isn't a vehicle registration number I recognise. It should look like \
                 MH 12 AB 1234."
            )),
        },
        Ok(None) => Field::Missing,
        Err(_) => Field::Bad(
            "I didn't catch the registration number. It should look like MH 12 AB 1234.".into(),
        ),
    }
}

fn dealer(params: &Params<'_>, deps: &Deps) -> Reply<Field<Dealer>> {
    let text = match params.text("dealer_id") {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(Field::Missing),
        Err(_) => return Ok(Field::Bad("I didn't catch the service centre.".into())),
    };
    let found = match DealerId::parse(&text) {
        Some(id) => deps.store.catalog().dealer(&id)?,
        None => None,
    };
    Ok(match found {
        Some(d) if d.kind == DealerKind::Service => Field::Good(d),
        Some(d) => Field::Bad(format!(
            "{} is a showroom and doesn't take service bookings. Please pick a service centre.",
            d.name
        )),
        None => Field::Bad(format!(
            "I couldn't find the service centre \"{text}\". Service centre ids look like D-PUN-01."
        )),
    })
}

async fn service(params: &Params<'_>, deps: &Deps) -> Reply<Field<ServiceType>> {
    let text = match params.text("service_type") {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(Field::Missing),
        Err(_) => return Ok(Field::Bad("I didn't catch the kind of service.".into())),
    };
    let catalog = deps.store.catalog();
    Ok(match catalog.service(&text)? {
        Some(service) => Field::Good(service),
        None => Field::Bad(not_known(
            "service",
            &text,
            "book",
            &catalog.service_names().await?,
        )),
    })
}

fn date(params: &Params<'_>, dealer: Option<&Dealer>, now: Timestamp) -> Field<Date> {
    let today = dealer.map_or_else(|| home_today(now), |d| d.today(now));
    let (first, last) = booking_window(today, MAX_DAYS_AHEAD);
    let between = || format!("between {} and {}", short_date(first), short_date(last));
    match params.date("booking_date") {
        Ok(Some(date)) if date <= today => Field::Bad(format!(
            "{} has already passed. Please choose a date {}.",
            short_date(date),
            between()
        )),
        Ok(Some(date)) if date > last => Field::Bad(format!(
            "I can only book up to {MAX_DAYS_AHEAD} days ahead. Please choose a date {}.",
            between()
        )),
        Ok(Some(date)) => match dealer {
            Some(d) if !d.hours.open_on(date.weekday()) => Field::Bad(format!(
                "{} is closed on {}s. It's open {}. Which other day suits you?",
                d.name,
                date.strftime("%A"),
                d.hours.summary()
            )),
            _ => Field::Good(date),
        },
        Ok(None) => Field::Missing,
        Err(e) => Field::Bad(format!(
            "That date doesn't exist ({}). Which date would you like?",
            e.problem
        )),
    }
}

async fn time(
    params: &Params<'_>,
    deps: &Deps,
    dealer: Option<&Dealer>,
    date: Option<Date>,
    (mode, deadline): (Mode, Instant),
) -> Reply<Field<SlotTime>> {
    let given = match params.time("booking_time") {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Field::Missing),
        Err(_) => {
            return Ok(Field::Bad(
                "I didn't catch the time. Which time would you like, for example 10:30?".into(),
            ));
        }
    };
    let Some(d) = dealer else {
        // Without a dealer there are no slots to check against; the dealer's problem is reported.
        return Ok(SlotTime::from_time(given).map_or(Field::Missing, Field::Good));
    };
    let day = d.hours.slots();
    let Some(slot) = SlotTime::from_time(given).filter(|s| day.contains(s)) else {
        return Ok(Field::Bad(match (day.first(), day.last()) {
            (Some(first), Some(last)) => format!(
                "{} takes appointments every {} minutes from {first} to {last}.",
                d.name, d.hours.slot_minutes
            ),
            _ => format!("{} has no appointment slots.", d.name),
        }));
    };
    let Some(date) = date else {
        return Ok(Field::Good(slot));
    };
    let counts = match deps.bookings.slot_counts(&d.id, date, deadline).await {
        Ok(counts) => counts,
        // The booking store is down or slow: the slot is not known to be full. Validation lets it
        // pass (the create checks again, atomically), and the create itself then answers that it
        // can't take bookings right now instead of failing the whole call.
        Err(e) if store_down(deps, &e, "slot counts unavailable") => return Ok(Field::Good(slot)),
        Err(e) => return Err(HandlerError::from(e).into()),
    };
    if counts.get(slot) < d.hours.slot_capacity {
        return Ok(Field::Good(slot));
    }
    let verb = match mode {
        Mode::Create => TAKEN,
        Mode::Validate => "is fully booked",
    };
    Ok(Field::Full(full_message(d, date, slot, &counts, verb)))
}

/// Runs every field's check over `params` in order (later checks use earlier good values); slot
/// counts are read before `deadline`. The booking tools call this too, with their JSON body as the
/// parameters, so tags and tools apply one set of rules.
pub(crate) async fn check(
    params: &Params<'_>,
    deps: &Deps,
    mode: Mode,
    now: Timestamp,
    deadline: Instant,
) -> Reply<Form> {
    let mut form = Form::default();
    let number = vehicle(params);
    if let Some((v, rewritten)) = form.take(
        mode,
        "vehicle_number",
        "your vehicle's registration number",
        number,
    ) {
        form.vehicle = Some(v);
        form.vehicle_rewritten = rewritten;
    }
    let found = dealer(params, deps)?;
    form.dealer = form.take(mode, "dealer_id", "the service centre", found);
    let found = service(params, deps).await?;
    form.service = form.take(mode, "service_type", "the kind of service", found);
    let day = date(params, form.dealer.as_ref(), now);
    form.date = form.take(mode, "booking_date", "the date", day);
    let slot = time(
        params,
        deps,
        form.dealer.as_ref(),
        form.date,
        (mode, deadline),
    )
    .await?;
    form.time = form.take(mode, "booking_time", "the time", slot);
    Ok(form)
}

/// Whether `e` is the booking store being down or slow (`Unavailable`, `Deadline`), which the
/// caller answers around; logged at WARN as `what`. Any other error is a fault to pass on.
pub(crate) fn store_down(deps: &Deps, e: &BookingError, what: &'static str) -> bool {
    let down = matches!(e, BookingError::Unavailable(_) | BookingError::Deadline);
    if down {
        tracing::warn!(
            error = %crate::telemetry::error_chain(e),
            backend = deps.bookings.backend(),
            "{what}"
        );
    }
    down
}

/// "Sorry, the 10:30 slot on 14 March at X {is fully booked}. Free times nearby: 10:00, 11:00."
pub(crate) fn full_message(
    dealer: &Dealer,
    date: Date,
    time: SlotTime,
    counts: &SlotCounts,
    verb: &str,
) -> String {
    let capacity = dealer.hours.slot_capacity;
    let mut free: Vec<SlotTime> = dealer
        .hours
        .slots()
        .into_iter()
        .filter(|t| counts.get(*t) < capacity)
        .collect();
    free.sort_by_key(|t| t.distance(time));
    free.truncate(SUGGESTIONS);
    free.sort();
    let mut text = format!(
        "Sorry, the {time} slot on {} at {} {verb}.",
        short_date(date),
        dealer.name
    );
    if free.is_empty() {
        text.push_str(" That day is full; please choose another date.");
    } else {
        let times: Vec<String> = free.iter().map(ToString::to_string).collect();
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

/// `booking.validate`: every collected value checked; bad ones invalidated with one re-prompt.
pub async fn validate(call: Call, deps: Arc<Deps>) -> Reply {
    let form = check(
        &call.params(),
        &deps,
        Mode::Validate,
        Timestamp::now(),
        call.deadline,
    )
    .await?;
    let mut response = WebhookResponse::new();
    if let (Some(v), true) = (&form.vehicle, form.vehicle_rewritten) {
        response = response.set_param("vehicle_number", v.as_str());
    }
    if form.problems.is_empty() {
        return Ok(response);
    }
    Ok(reprompt(&call, response, &form.problems))
}

/// `booking.create`: everything checked again, then booked (see the module docs).
pub async fn create(call: Call, deps: Arc<Deps>) -> Reply {
    let form = check(
        &call.params(),
        &deps,
        Mode::Create,
        Timestamp::now(),
        call.deadline,
    )
    .await?;
    let request = &call.request;
    let car_model = call.params().text("car_model").ok().flatten();
    let (draft, dealer, service) = form
        .draft(
            request.session_id(),
            &request.detect_intent_response_id,
            car_model,
        )
        .map_err(|problems| ask(reprompt(&call, WebhookResponse::new(), &problems)))?;
    if let Some(api) = &deps.booking_api {
        return Ok(book_remotely(api, &call, &draft, &dealer, &service).await);
    }
    let outcome = match deps.bookings.create(&draft, call.deadline).await {
        Ok(outcome) => outcome,
        Err(e) if store_down(&deps, &e, "booking not taken") => {
            return Ok(WebhookResponse::new().text(CANNOT_BOOK_TEXT));
        }
        Err(e) => return Err(HandlerError::from(e).into()),
    };
    match outcome {
        BookingOutcome::Confirmed { booking, replayed } => {
            if replayed {
                tracing::info!(booking_id = %booking.id, "booking call repeated: same booking returned");
            }
            Ok(confirmed(
                &service,
                &dealer,
                booking.date,
                booking.time,
                booking.id.as_str(),
                booking.status.as_str(),
            ))
        }
        BookingOutcome::SlotFull => {
            let counts = deps
                .bookings
                .slot_counts(&dealer.id, draft.date, call.deadline)
                .await?;
            let problem = Problem {
                param: "booking_time",
                message: full_message(&dealer, draft.date, draft.time, &counts, TAKEN),
            };
            Ok(reprompt(&call, WebhookResponse::new(), &[problem]))
        }
    }
}

/// The confirmation answer, the same for every backend.
fn confirmed(
    service: &ServiceType,
    dealer: &Dealer,
    date: Date,
    time: SlotTime,
    id: &str,
    status: &str,
) -> WebhookResponse {
    WebhookResponse::new()
        .text(format!(
            "Done! Your {} at {} is booked for {} at {time}. Your booking id is {id}.",
            service.name.to_lowercase(),
            dealer.name,
            long_date(date),
        ))
        .set_param("booking_id", id)
        .set_param("booking_status", status)
}

/// Our parameter for a field name the booking API reports.
pub(crate) fn param_for_field(field: &str) -> Option<&'static str> {
    match field {
        "vehicle_number" => Some("vehicle_number"),
        "dealer_id" => Some("dealer_id"),
        "service_type" => Some("service_type"),
        "date" | "booking_date" => Some("booking_date"),
        "time" | "booking_time" => Some("booking_time"),
        _ => None,
    }
}

/// The remote booking API's request for a checked draft.
pub(crate) fn api_request(draft: &BookingDraft) -> BookingRequest {
    BookingRequest {
        vehicle_number: draft.vehicle.as_str().to_owned(),
        dealer_id: draft.dealer.as_str().to_owned(),
        service_type: draft.service.as_str().to_owned(),
        car_model: draft.car_model.clone(),
        date: draft.date,
        time: draft.time,
        session_id: draft.session_id.clone(),
    }
}

/// Books through the remote API and turns its answer into a reply.
async fn book_remotely(
    api: &BookingApiClient,
    call: &Call,
    draft: &BookingDraft,
    dealer: &Dealer,
    service: &ServiceType,
) -> WebhookResponse {
    let request = api_request(draft);
    match api
        .create(&request, draft.request_key.as_str(), call.budget())
        .await
    {
        Ok(c) => confirmed(
            service,
            dealer,
            draft.date,
            draft.time,
            &c.booking_id,
            &c.status,
        ),
        Err(BookingApiError::SlotTaken) => {
            let problem = Problem {
                param: "booking_time",
                message: format!(
                    "Sorry, the {} slot on {} at {} {TAKEN}. Which other time would suit you?",
                    draft.time,
                    short_date(draft.date),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OpeningHours;
    use jiff::civil::Weekday;

    fn dealer() -> Dealer {
        Dealer {
            id: DealerId::parse("D-TST-01").unwrap(),
            name: "Test".into(),
            kind: DealerKind::Service,
            city: "Pune".into(),
            postal_code: "411001".into(),
            address: "x".into(),
            phone: "+91".into(),
            time_zone: crate::domain::home_time_zone(),
            hours: OpeningHours {
                days: vec![Weekday::Monday],
                opens: SlotTime::new(9, 0).unwrap(),
                closes: SlotTime::new(12, 0).unwrap(),
                slot_minutes: 30,
                slot_capacity: 1,
            },
        }
    }

    #[test]
    fn full_slots_suggest_the_nearest_free_times() {
        let at = |h, m| SlotTime::new(h, m).unwrap();
        let counts = SlotCounts::new([(at(10, 0), 1), (at(10, 30), 1)]);
        let day = jiff::civil::date(2031, 3, 14);
        let text = full_message(&dealer(), day, at(10, 0), &counts, "is fully booked");
        assert_eq!(
            text,
            "Sorry, the 10:00 slot on 14 March at Test is fully booked. Free times nearby: 09:00, \
             09:30, 11:00."
        );
    }
}
