//! `service.cost`: the price of a service for a car model (and fuel type) from the price list, with
//! parts, labour and total.
//!
//! Names are matched loosely (`NEXON`, `general service`); what the list does not know is rejected
//! with the choices it does know, so the agent can re-prompt. When the model comes in several fuel
//! variants and none was given, the answer asks which one (with chips) rather than guessing.

use crate::cx::WebhookResponse;
use crate::store::Store;
use crate::store::queries::{self, Fuel};

use super::{Call, Handler, HandlerError, HandlerFuture, chips, reject};

/// The `service.cost` handler.
pub struct ServiceCost {
    store: Store,
}

impl ServiceCost {
    /// The handler over `store`.
    pub fn new(store: Store) -> Self {
        ServiceCost { store }
    }

    fn answer(&self, call: &Call) -> Result<WebhookResponse, HandlerError> {
        let params = call.params();
        let store = &self.store;

        let Some(model_text) = params.text("car_model").ok().flatten() else {
            let models = store.read(queries::model_names)?;
            return Ok(WebhookResponse::new()
                .text("Which car model should I price the service for?")
                .rich_content(chips(models)));
        };
        let Some((model_key, model)) = store.read(|c| queries::resolve_model(c, &model_text))?
        else {
            let models = store.read(queries::model_names)?;
            let answer = WebhookResponse::new().text(format!(
                "I don't have prices for \"{model_text}\". I can price these models: {}.",
                models.join(", ")
            ));
            return Ok(reject(
                call,
                answer.rich_content(chips(models)),
                "car_model",
            ));
        };

        let Some(service_text) = params.text("service_type").ok().flatten() else {
            let services = store.read(queries::service_names)?;
            return Ok(WebhookResponse::new()
                .text(format!("Which service for the {model}?"))
                .rich_content(chips(services)));
        };
        let Some((service_key, service)) =
            store.read(|c| queries::resolve_service(c, &service_text))?
        else {
            let services = store.read(queries::service_names)?;
            let answer = WebhookResponse::new().text(format!(
                "I don't know the service \"{service_text}\". I can price: {}.",
                services.join(", ")
            ));
            return Ok(reject(
                call,
                answer.rich_content(chips(services)),
                "service_type",
            ));
        };

        let prices = store.read(|c| queries::prices(c, &model_key, &service_key))?;
        let fuels: Vec<&str> = prices.iter().map(|p| p.fuel.as_str()).collect();
        if prices.is_empty() {
            let answer = WebhookResponse::new().text(format!(
                "{service} isn't offered for the {model}. Is there another service I can price?"
            ));
            return Ok(reject(call, answer, "service_type"));
        }
        let fuel_text = params.text("fuel_type").ok().flatten();
        let price = match fuel_text.as_deref().map(|f| (f, Fuel::parse(f))) {
            None if prices.len() == 1 => &prices[0],
            None => {
                return Ok(WebhookResponse::new()
                    .text(format!(
                        "Is your {model} {}? The price depends on it.",
                        or_list(&fuels)
                    ))
                    .rich_content(chips(fuels.iter().map(|f| capitalise(f)))));
            }
            Some((given, fuel)) => match prices.iter().find(|p| Some(p.fuel) == fuel) {
                Some(price) => price,
                None => {
                    let answer = WebhookResponse::new().text(format!(
                        "The {model} {} isn't priced for \"{given}\"; it is for {}. Which one is yours?",
                        service.to_lowercase(),
                        or_list(&fuels)
                    ));
                    return Ok(reject(call, answer, "fuel_type"));
                }
            },
        };
        let Some(total) = price.parts.checked_add(price.labour) else {
            return Err(HandlerError::msg(format!(
                "price list row for {model_key}/{service_key} mixes currencies"
            )));
        };
        Ok(WebhookResponse::new()
            .text(format!(
                "A {} for a {} {model} costs {total}: parts {} and labour {}.",
                service.to_lowercase(),
                price.fuel.as_str(),
                price.parts,
                price.labour
            ))
            .set_param("service_cost", total.decimal())
            .set_param("currency", total.currency.code()))
    }
}

/// "petrol, diesel or electric".
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Handler for ServiceCost {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move { self.answer(call) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_naturally() {
        assert_eq!(or_list(&["diesel"]), "diesel");
        assert_eq!(or_list(&["petrol", "diesel"]), "petrol or diesel");
        assert_eq!(
            or_list(&["petrol", "diesel", "electric"]),
            "petrol, diesel or electric"
        );
        assert_eq!(capitalise("petrol"), "Petrol");
        assert_eq!(capitalise("CNG"), "CNG");
    }
}
