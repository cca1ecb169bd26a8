//! `service.cost`: the price of a service for a car model (and fuel type) from the price list, with
//! parts, labour and total.
//!
//! Names are matched loosely (`NEXON`, `general service`); what the list does not know is rejected
//! with the choices it does know, so the agent can re-prompt. When the model comes in several fuel
//! variants and none was given, the answer asks which one (with chips) rather than guessing.

use std::sync::Arc;

use crate::cx::WebhookResponse;
use crate::domain::vocabulary::{self, or_list};
use crate::domain::{CarModel, Price, ServiceType};

use super::{Call, Deps, HandlerError, Reply, ask, chips, not_known, reject};

/// The `service.cost` handler.
pub async fn service_cost(call: Call, deps: Arc<Deps>) -> Reply {
    let model = model(&call, &deps).await?;
    let service = service(&call, &deps, &model).await?;
    let prices = deps.store.catalog().prices(&model, &service.key)?;
    let price = price(&call, &model, &service, &prices)?;
    let total = price.total().ok_or_else(|| {
        HandlerError::msg(format!(
            "price list row for {}/{} mixes currencies",
            model.key, service.key
        ))
    })?;
    Ok(WebhookResponse::new()
        .text(format!(
            "A {} for a {} {} costs {total}: parts {} and labour {}.",
            service.name.to_lowercase(),
            price.fuel.label(),
            model.name,
            price.parts,
            price.labour
        ))
        .set_param("service_cost", total.decimal())
        .set_param("currency", total.currency.code()))
}

/// The model the user named, or the question to ask.
async fn model(call: &Call, deps: &Deps) -> Reply<CarModel> {
    let catalog = deps.store.catalog();
    let Some(text) = call.params().text("car_model").ok().flatten() else {
        let models = catalog.model_names().await?;
        return Err(ask(WebhookResponse::new()
            .text("Which car model should I price the service for?")
            .rich_content(chips(models))));
    };
    if let Some(model) = catalog.model(&text)? {
        return Ok(model);
    }
    let models = catalog.model_names().await?;
    let answer = WebhookResponse::new().text(format!(
        "I don't have prices for \"{text}\". I can price these models: {}.",
        models.join(", ")
    ));
    Err(ask(reject(
        call,
        answer.rich_content(chips(models)),
        "car_model",
    )))
}

/// The service the user named, or the question to ask.
async fn service(call: &Call, deps: &Deps, model: &CarModel) -> Reply<ServiceType> {
    let catalog = deps.store.catalog();
    let Some(text) = call.params().text("service_type").ok().flatten() else {
        let services = catalog.service_names().await?;
        return Err(ask(WebhookResponse::new()
            .text(format!("Which service for the {}?", model.name))
            .rich_content(chips(services))));
    };
    if let Some(service) = catalog.service(&text)? {
        return Ok(service);
    }
    let services = catalog.service_names().await?;
    let answer = WebhookResponse::new().text(not_known("service", &text, "price", &services));
    Err(ask(reject(
        call,
        answer.rich_content(chips(services)),
        "service_type",
    )))
}

/// The price line for the fuel the user named (or the only one), or the question to ask.
fn price<'p>(
    call: &Call,
    model: &CarModel,
    service: &ServiceType,
    prices: &'p [Price],
) -> Reply<&'p Price> {
    if prices.is_empty() {
        let answer = WebhookResponse::new().text(format!(
            "{} isn't offered for the {}. Is there another service I can price?",
            service.name, model.name
        ));
        return Err(ask(reject(call, answer, "service_type")));
    }
    let fuels: Vec<&str> = prices.iter().map(|p| p.fuel.label()).collect();
    let Some(given) = call.params().text("fuel_type").ok().flatten() else {
        if let [only] = prices {
            return Ok(only);
        }
        return Err(ask(WebhookResponse::new()
            .text(format!(
                "Is your {} {}? The price depends on it.",
                model.name,
                or_list(&fuels)
            ))
            .rich_content(chips(fuels.iter().map(|f| capitalise(f))))));
    };
    let fuel = vocabulary::fuel(&given);
    prices.iter().find(|p| Some(p.fuel) == fuel).ok_or_else(|| {
        let answer = WebhookResponse::new().text(format!(
            "The {} {} isn't priced for \"{given}\"; it is for {}. Which one is yours?",
            model.name,
            service.name.to_lowercase(),
            or_list(&fuels)
        ));
        ask(reject(call, answer, "fuel_type"))
    })
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_capitalised() {
        assert_eq!(capitalise("petrol"), "Petrol");
        assert_eq!(capitalise("CNG"), "CNG");
        assert_eq!(capitalise(""), "");
    }
}
