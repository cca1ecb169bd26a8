//! Booking tools: `validateBooking` and `createBooking`, through the `booking.validate` and
//! `booking.create` tags' own checks (`crate::handlers::booking::check`) and the same backends (the
//! booking repository, or the remote booking API when `BOOKING_API_URL` is set).
//!
//! `createBooking` is idempotent per `request_id` (the agent may retry with the same one) and, like
//! the tag, per vehicle and slot. A slot that is full, or fills up meanwhile, is a 409 naming
//! `booking_time` with the nearest free times.

use http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{FieldError, Input, Problem, Tool, ToolResult, from_stop, prop};
use crate::clients::booking_api::{BookingApiClient, BookingApiError};
use crate::domain::{BookingDraft, BookingOutcome, Dealer, ServiceType};
use crate::handlers::booking::{
    Form, Mode, Problem as CheckProblem, TAKEN, api_request, check, full_message, param_for_field,
    store_down,
};

/// `POST /tools/validate-booking`.
pub const VALIDATE: Tool = Tool {
    name: "validate-booking",
    operation_id: "validateBooking",
    summary: "Check booking details collected so far, before booking",
    description: "Checks whichever of vehicle_number, dealer_id, service_type, booking_date and \
        booking_time are given (all optional) and returns every problem with what would be right, \
        e.g. a date the centre is closed or a slot that is full (with free times nearby). Use it \
        while collecting booking details; it books nothing. valid=true means no problem so far; \
        `missing` lists what createBooking still needs.",
    request: validate_request,
    response: validate_response,
    statuses: &[],
    end_user: false,
    run: |input| Box::pin(validate(input)),
};

/// `POST /tools/create-booking`.
pub const CREATE: Tool = Tool {
    name: "create-booking",
    operation_id: "createBooking",
    summary: "Book a service appointment at a service centre",
    description: "Books a service appointment once the customer has confirmed the vehicle number, \
        service centre (dealer_id from findDealers), service type, date and time. Every value is \
        checked again; a 400 names each field to ask about again, a 409 means the slot is taken and \
        lists free times nearby. Pass the same request_id when retrying so the booking is made \
        once. Returns the booking id to read to the customer.",
    request: create_request,
    response: create_response,
    statuses: &[409],
    end_user: false,
    run: |input| Box::pin(create(input)),
};

/// The booking fields in the order the checks run.
const FIELDS: [&str; 5] = [
    "vehicle_number",
    "dealer_id",
    "service_type",
    "booking_date",
    "booking_time",
];

fn fields_schema() -> serde_json::Map<String, Value> {
    let v = json!({
        "vehicle_number": prop("string", "Indian registration number, any spacing.", json!("MH 12 AB 1234")),
        "dealer_id": prop("string", "A service centre's dealer_id from findDealers.", json!("D-PUN-01")),
        "service_type": prop("string", "The kind of service, e.g. periodic service.", json!("periodic service")),
        "booking_date": {"type": "string", "format": "date",
                         "description": "The day, YYYY-MM-DD, from tomorrow up to 60 days ahead.",
                         "example": "2031-03-14"},
        "booking_time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$",
                         "description": "Slot start, HH:MM (24-hour), on the centre's slot boundaries.",
                         "example": "10:30"}
    });
    match v {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn validate_request() -> Value {
    json!({"type": "object", "properties": fields_schema()})
}

fn create_request() -> Value {
    let mut props = fields_schema();
    props.insert(
        "car_model".into(),
        prop("string", "The car model, if known.", json!("Nexon")),
    );
    props.insert(
        "request_id".into(),
        json!({"type": "string", "maxLength": 128,
               "description": "Idempotency key: the same value on a retry returns the same booking.",
               "example": "conv-42-booking-1"}),
    );
    json!({"type": "object", "required": FIELDS, "properties": props})
}

fn problems_schema() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
        }
    })
}

fn validate_response() -> Value {
    json!({
        "type": "object",
        "required": ["valid", "problems", "missing"],
        "properties": {
            "valid": {"type": "boolean", "description": "No problem with the values given."},
            "problems": problems_schema(),
            "missing": {"type": "array", "items": {"type": "string", "enum": FIELDS},
                        "description": "Fields not given yet."},
            "vehicle_number": prop("string", "The vehicle number, normalised.", json!("MH12AB1234"))
        }
    })
}

fn create_response() -> Value {
    json!({
        "type": "object",
        "required": ["booking_id", "status", "dealer_id", "dealer_name", "service_type",
                     "booking_date", "booking_time", "vehicle_number", "confirmation"],
        "properties": {
            "booking_id": prop("string", "Read this to the customer.", json!("BK-7Q2M9ZK4XA")),
            "status": prop("string", "Where the booking stands.", json!("confirmed")),
            "dealer_id": {"type": "string"},
            "dealer_name": {"type": "string"},
            "service_type": {"type": "string"},
            "booking_date": {"type": "string", "format": "date"},
            "booking_time": {"type": "string"},
            "vehicle_number": {"type": "string"},
            "confirmation": prop("string", "A sentence confirming the booking.", json!("Your periodic service at CarConnect Pune is booked."))
        }
    })
}

fn field_errors(problems: &[CheckProblem]) -> Vec<FieldError> {
    problems
        .iter()
        .map(|p| FieldError {
            field: p.param.to_owned(),
            message: p.message.clone(),
        })
        .collect()
}

fn slot_taken(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Problem::new(StatusCode::CONFLICT, "slot_taken", "Slot taken", detail).with_errors(errors)
}

async fn run_checks(input: &Input, mode: Mode, tool: &str) -> Result<Form, Problem> {
    check(
        &input.params(),
        &input.deps,
        mode,
        Timestamp::now(),
        input.deadline,
    )
    .await
    .map_err(|stop| from_stop(tool, stop))
}

async fn validate(input: Input) -> ToolResult {
    let form = run_checks(&input, Mode::Validate, "validate-booking").await?;
    let params = input.params();
    let missing: Vec<&str> = FIELDS.into_iter().filter(|f| !params.has(f)).collect();
    let mut answer = json!({
        "valid": form.problems().is_empty(),
        "problems": field_errors(form.problems()),
        "missing": missing,
    });
    if let Some(v) = form.vehicle() {
        answer["vehicle_number"] = json!(v.as_str());
    }
    Ok(answer)
}

async fn create(input: Input) -> ToolResult {
    let form = run_checks(&input, Mode::Create, "create-booking").await?;
    if form.slot_full() {
        return Err(slot_taken(field_errors(form.problems())));
    }
    let request_id = input.text("request_id")?.unwrap_or_default();
    if request_id.chars().count() > 128 {
        return Err(Problem::invalid(
            "request_id",
            "`request_id` is at most 128 characters.",
        ));
    }
    let car_model = input.text("car_model")?;
    let (draft, dealer, service) = form
        .draft("tools", &request_id, car_model)
        .map_err(|problems| Problem::invalid_fields(field_errors(&problems)))?;
    let deps = &input.deps;
    if let Some(api) = &deps.booking_api {
        return create_remotely(api, &draft, &dealer, &service, input.budget()).await;
    }
    match deps.bookings.create(&draft, input.deadline).await {
        Ok(BookingOutcome::Confirmed { booking, replayed }) => {
            if replayed {
                tracing::info!(booking_id = %booking.id, "booking tool call repeated: same booking returned");
            }
            Ok(confirmed(
                &draft_view(&draft),
                &dealer,
                &service,
                booking.id.as_str(),
                booking.status.as_str(),
            ))
        }
        Ok(BookingOutcome::SlotFull) => {
            let counts = deps
                .bookings
                .slot_counts(&dealer.id, draft.date, input.deadline)
                .await
                .map_err(|e| from_stop("create-booking", e.into()))?;
            Err(slot_taken(vec![FieldError {
                field: "booking_time".into(),
                message: full_message(&dealer, draft.date, draft.time, &counts, TAKEN),
            }]))
        }
        Err(e) if store_down(deps, &e, "booking not taken") => Err(Problem::unavailable(
            "Bookings cannot be taken right now. Please retry in a few minutes.",
        )),
        Err(e) => Err(from_stop("create-booking", e.into())),
    }
}

/// `create` through the remote booking API (`BOOKING_API_URL`), as the tag's `book_remotely`.
async fn create_remotely(
    api: &BookingApiClient,
    draft: &BookingDraft,
    dealer: &Dealer,
    service: &ServiceType,
    budget: std::time::Duration,
) -> ToolResult {
    let made = api
        .create(&api_request(draft), draft.request_key.as_str(), budget)
        .await;
    match made {
        Ok(c) => Ok(confirmed(
            &draft_view(draft),
            dealer,
            service,
            &c.booking_id,
            &c.status,
        )),
        Err(BookingApiError::SlotTaken) => Err(slot_taken(vec![FieldError {
            field: "booking_time".into(),
            message: format!(
                "The {} slot on {} at {} {TAKEN}. Please choose another time.",
                draft.time, draft.date, dealer.name
            ),
        }])),
        Err(BookingApiError::Rejected { field, message }) => {
            let message = format!("The booking system couldn't accept that: {message}");
            match field.as_deref().and_then(param_for_field) {
                Some(param) => Err(Problem::invalid(param, message)),
                None => Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "booking_rejected",
                    "Booking rejected",
                    message,
                )),
            }
        }
        // The client has logged these with their causes.
        Err(_) => Err(Problem::unavailable(
            "The booking system is not answering. Please retry shortly.",
        )),
    }
}

/// The draft's values the answer repeats.
struct DraftView {
    date: String,
    time: String,
    vehicle: String,
}

fn draft_view(draft: &crate::domain::BookingDraft) -> DraftView {
    DraftView {
        date: draft.date.to_string(),
        time: draft.time.to_string(),
        vehicle: draft.vehicle.as_str().to_owned(),
    }
}

fn confirmed(
    draft: &DraftView,
    dealer: &Dealer,
    service: &ServiceType,
    id: &str,
    status: &str,
) -> Value {
    json!({
        "booking_id": id,
        "status": status,
        "dealer_id": dealer.id.as_str(),
        "dealer_name": dealer.name,
        "service_type": service.name,
        "booking_date": draft.date,
        "booking_time": draft.time,
        "vehicle_number": draft.vehicle,
        "confirmation": format!(
            "Your {} at {} is booked for {} at {}. Your booking id is {id}.",
            service.name.to_lowercase(), dealer.name, draft.date, draft.time
        ),
    })
}
