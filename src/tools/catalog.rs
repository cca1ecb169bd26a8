//! Catalog tools: `findDealers` (the `dealers.nearby` tag's search) and `getServiceCost` (the
//! `service.cost` tag's price choice).

use serde_json::{Value, json};

use super::{Input, Problem, Tool, ToolResult, prop, store_down};
use crate::domain::Dealer;
use crate::domain::vocabulary::{self, or_list};
use crate::handlers::dealers::search;
use crate::handlers::service_cost::{NoPrice, choose_price};
use crate::store::catalog::DealerFilter;

/// `POST /tools/find-dealers`.
pub const FIND_DEALERS: Tool = Tool {
    name: "find-dealers",
    operation_id: "findDealers",
    summary: "Find CarConnect dealers and service centres near a city or PIN code",
    description: "Lists up to 5 CarConnect dealers for a city name (any case, common aliases such \
        as Bombay) or an Indian PIN code, optionally only sales showrooms or only service centres, \
        optionally only those carrying a car model. Use it when the customer asks where to buy or \
        service a car, and before createBooking to get a service centre's dealer_id. An empty list \
        comes with the cities that are covered.",
    request: dealers_request,
    response: dealers_response,
    statuses: &[],
    end_user: false,
    run: |input| Box::pin(find_dealers(input)),
};

/// `POST /tools/service-cost`.
pub const SERVICE_COST: Tool = Tool {
    name: "service-cost",
    operation_id: "getServiceCost",
    summary: "Price a service for a car model: parts, labour and total",
    description: "Looks up the price list for a service type on a car model (and fuel type, when \
        the model comes in several). Use it when the customer asks what a service costs. Amounts \
        are exact decimal strings in major units with an ISO 4217 currency. When the model has \
        several fuel variants and fuel_type is missing, the answer is a 400 naming fuel_type and \
        the choices: ask the customer and call again.",
    request: cost_request,
    response: cost_response,
    statuses: &[],
    end_user: false,
    run: |input| Box::pin(service_cost(input)),
};

fn dealers_request() -> Value {
    json!({
        "type": "object",
        "required": ["location"],
        "properties": {
            "location": prop("string", "A city name or a 6-digit Indian PIN code.", json!("Pune")),
            "dealer_kind": {
                "type": "string", "enum": ["sales", "service"],
                "description": "Only sales showrooms (`sales`) or only service centres (`service`); omit for both.",
                "example": "service"
            },
            "car_model": prop("string", "Only dealers carrying this model, e.g. Nexon.", json!("Nexon"))
        }
    })
}

fn dealers_response() -> Value {
    json!({
        "type": "object",
        "required": ["area", "dealers"],
        "properties": {
            "area": prop("string", "The area searched, e.g. `Pune` or `PIN code 411001`.", json!("Pune")),
            "dealers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["dealer_id", "name", "kind", "city", "postal_code", "address", "phone", "opening_hours"],
                    "properties": {
                        "dealer_id": prop("string", "Pass this as dealer_id to the booking tools.", json!("D-PUN-01")),
                        "name": prop("string", "The dealer's name.", json!("CarConnect Pune Service")),
                        "kind": {"type": "string", "enum": ["sales", "service"],
                                 "description": "`service` centres take service bookings."},
                        "city": {"type": "string"},
                        "postal_code": {"type": "string"},
                        "address": {"type": "string"},
                        "phone": prop("string", "E.164 phone number.", json!("+912012345678")),
                        "opening_hours": prop("string", "Days and hours.", json!("Mon-Sat 09:00-18:00"))
                    }
                }
            },
            "covered_cities": {
                "type": "array", "items": {"type": "string"},
                "description": "Present when nothing was found: the cities that have dealers."
            }
        }
    })
}

fn cost_request() -> Value {
    json!({
        "type": "object",
        "required": ["car_model", "service_type"],
        "properties": {
            "car_model": prop("string", "The car model, e.g. Nexon.", json!("Nexon")),
            "service_type": prop("string", "The kind of service, e.g. periodic service, oil change.", json!("periodic service")),
            "fuel_type": {
                "type": "string", "enum": ["petrol", "diesel", "cng", "electric"],
                "description": "The car's fuel; needed when the model comes in several variants.",
                "example": "petrol"
            }
        }
    })
}

fn money(description: &str) -> Value {
    json!({"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$", "description": description, "example": "4500.00"})
}

fn cost_response() -> Value {
    json!({
        "type": "object",
        "required": ["car_model", "service_type", "fuel_type", "currency", "parts", "labour", "total", "total_text"],
        "properties": {
            "car_model": prop("string", "The model's name on the price list.", json!("Nexon")),
            "service_type": prop("string", "The service's name on the price list.", json!("Periodic service")),
            "fuel_type": {"type": "string", "enum": ["petrol", "diesel", "cng", "electric"]},
            "currency": prop("string", "ISO 4217 code.", json!("INR")),
            "parts": money("Parts, in major units."),
            "labour": money("Labour, in major units."),
            "total": money("Parts plus labour, in major units."),
            "total_text": prop("string", "The total formatted for the customer.", json!("₹4,500.00"))
        }
    })
}

const TOOL_DEALERS: &str = "find-dealers";
const TOOL_COST: &str = "service-cost";

async fn find_dealers(input: Input) -> ToolResult {
    let place = match input.params().place("location") {
        Ok(Some(place)) => place,
        Ok(None) => {
            return Err(Problem::invalid(
                "location",
                "`location` is required: a city name or a PIN code.",
            ));
        }
        Err(_) => {
            return Err(Problem::invalid(
                "location",
                "`location` must name a city or a PIN code.",
            ));
        }
    };
    let kind = match input.text("dealer_kind")? {
        None => None,
        Some(text) => Some(vocabulary::dealer_kind(&text).ok_or_else(|| {
            Problem::invalid(
                "dealer_kind",
                format!("`dealer_kind` is `sales` or `service`, not \"{text}\"."),
            )
        })?),
    };
    let catalog = input.deps.store.catalog();
    let down = |e| store_down(TOOL_DEALERS, e);
    let model = match input.text("car_model")? {
        None => None,
        Some(text) => match catalog.model(&text).map_err(down)? {
            Some(model) => Some(model),
            None => {
                let names = catalog.model_names().await.map_err(down)?;
                return Err(Problem::invalid(
                    "car_model",
                    format!(
                        "I don't know the model \"{text}\". Known models: {}.",
                        names.join(", ")
                    ),
                ));
            }
        },
    };
    let filter = DealerFilter {
        kind,
        model: model.as_ref(),
    };
    let (dealers, area) = search(&catalog, &place, filter).map_err(down)?;
    let mut answer = json!({
        "area": area,
        "dealers": dealers.iter().map(dealer_json).collect::<Vec<_>>(),
    });
    if dealers.is_empty() {
        answer["covered_cities"] = json!(catalog.city_names().await.map_err(down)?);
    }
    Ok(answer)
}

fn dealer_json(d: &Dealer) -> Value {
    json!({
        "dealer_id": d.id.as_str(),
        "name": d.name,
        "kind": d.kind.as_str(),
        "city": d.city,
        "postal_code": d.postal_code,
        "address": d.address,
        "phone": d.phone,
        "opening_hours": d.hours.summary(),
    })
}

/// 400 on `field`: `said`, then the known `names` (`... Services: a, b, c.`).
fn unknown(field: &str, said: String, names: &[String]) -> Problem {
    Problem::invalid(field, format!("{said}: {}.", names.join(", ")))
}

async fn service_cost(input: Input) -> ToolResult {
    let model_text = input.required_text("car_model", "the car model, e.g. Nexon")?;
    let service_text = input.required_text("service_type", "the kind of service")?;
    let fuel_text = input.text("fuel_type")?;
    let catalog = input.deps.store.catalog();
    let down = |e| store_down(TOOL_COST, e);
    let Some(model) = catalog.model(&model_text).map_err(down)? else {
        let names = catalog.model_names().await.map_err(down)?;
        let said = format!("I don't have prices for \"{model_text}\". Priced models");
        return Err(unknown("car_model", said, &names));
    };
    let Some(service) = catalog.service(&service_text).map_err(down)? else {
        let names = catalog.service_names().await.map_err(down)?;
        let said = format!("I don't know the service \"{service_text}\". Services");
        return Err(unknown("service_type", said, &names));
    };
    let prices = catalog.prices(&model, &service.key).map_err(down)?;
    let fuels: Vec<&str> = prices.iter().map(|p| p.fuel.as_str()).collect();
    let price = choose_price(&prices, fuel_text.as_deref()).map_err(|why| match why {
        NoPrice::NotOffered => Problem::invalid(
            "service_type",
            format!("{} isn't offered for the {}.", service.name, model.name),
        ),
        NoPrice::FuelNeeded => Problem::invalid(
            "fuel_type",
            format!(
                "The {} price depends on the fuel: `fuel_type` is {}.",
                model.name,
                or_list(&fuels)
            ),
        ),
        NoPrice::FuelNotPriced => Problem::invalid(
            "fuel_type",
            format!("The {} is priced for {} only.", model.name, or_list(&fuels)),
        ),
    })?;
    let Some(total) = price.total() else {
        tracing::error!(model = %model.key, service = %service.key, "price list row mixes currencies");
        return Err(Problem::internal());
    };
    Ok(json!({
        "car_model": model.name,
        "service_type": service.name,
        "fuel_type": price.fuel.as_str(),
        "currency": total.currency.code(),
        "parts": price.parts.decimal(),
        "labour": price.labour.decimal(),
        "total": total.decimal(),
        "total_text": total.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealer_kinds_in_the_schema_are_the_domain_kinds() {
        let schema = dealers_request();
        for kind in schema["properties"]["dealer_kind"]["enum"]
            .as_array()
            .unwrap()
        {
            let k = vocabulary::dealer_kind(kind.as_str().unwrap()).unwrap();
            assert_eq!(k.as_str(), kind.as_str().unwrap());
        }
        assert_eq!(crate::domain::DealerKind::Service.as_str(), "service");
    }
}
