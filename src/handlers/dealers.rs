//! `dealers.nearby`: up to five CarConnect dealers for a city or postal code, optionally only
//! showrooms or service centres, optionally only those carrying a car model.
//!
//! `location` may be a city name in any case or an alias (`Bombay`), a postal code (exact, else the
//! same postal district), or a `@sys.geo-city` / `@sys.location` object. The answer is text plus a
//! Messenger list and chips, and the session parameter `dealer_options` (the dealer ids shown, in
//! order) so a booking page can offer them. A place with no dealers gets the list of covered cities and
//! `location` rejected so the agent asks again.

use serde_json::Value;

use crate::cx::rich::{Anchor, ListItem};
use crate::cx::{Chip, RichContent, RichElement, WebhookResponse};
use crate::store::Store;
use crate::store::queries::{self, Dealer, DealerFilter, DealerKind};

use super::{Call, Handler, HandlerError, HandlerFuture, reject};

/// Most dealers listed at once.
const MAX_DEALERS: u32 = 5;

/// The `dealers.nearby` handler.
pub struct Nearby {
    store: Store,
}

impl Nearby {
    /// The handler over `store`.
    pub fn new(store: Store) -> Self {
        Nearby { store }
    }

    fn answer(&self, call: &Call) -> Result<WebhookResponse, HandlerError> {
        let params = call.params();
        let place = match params.place("location") {
            Ok(Some(place)) => place,
            Ok(None) => {
                return Ok(WebhookResponse::new()
                    .text("Which city or PIN code should I look in for a CarConnect dealer?"));
            }
            Err(_) => {
                let answer = WebhookResponse::new().text(
                    "Sorry, I didn't catch the place. Which city or PIN code should I look in?",
                );
                return Ok(reject(call, answer, "location"));
            }
        };
        let kind = params
            .text("dealer_kind")
            .ok()
            .flatten()
            .and_then(|k| DealerKind::parse(&k));
        let model_text = params.text("car_model").ok().flatten();
        let model = match &model_text {
            Some(text) => self.store.read(|c| queries::resolve_model(c, text))?,
            None => None,
        };
        let filter = DealerFilter {
            kind,
            model_key: model.as_ref().map(|(key, _)| key.as_str()),
        };

        let (dealers, area) = if let Some(code) = &place.postal_code {
            let found = self
                .store
                .read(|c| queries::dealers_near_postal_code(c, code, filter, MAX_DEALERS))?;
            (found, format!("PIN code {code}"))
        } else {
            let city = place.city.as_deref().unwrap_or_default();
            match self.store.read(|c| queries::resolve_city(c, city))? {
                Some((city_key, name)) => {
                    let found = self
                        .store
                        .read(|c| queries::dealers_in_city(c, &city_key, filter, MAX_DEALERS))?;
                    (found, name)
                }
                None => (Vec::new(), city.to_owned()),
            }
        };

        let what = match kind {
            Some(k) => format!("{}s", k.label()),
            None => "dealers".to_owned(),
        };
        let for_model = model
            .as_ref()
            .map(|(_, name)| format!(" for the {name}"))
            .unwrap_or_default();
        let mut response = WebhookResponse::new();
        if let (Some(text), None) = (&model_text, &model) {
            response = response.text(format!(
                "I don't know the model \"{text}\", so I'm not filtering by model."
            ));
        }
        if dealers.is_empty() {
            let cities = self.store.read(queries::city_names)?;
            let answer = response.text(format!(
                "I couldn't find CarConnect {what}{for_model} in {area}. We have dealers in {}. \
                 Which city should I look in?",
                cities.join(", ")
            ));
            return Ok(reject(call, answer, "location"));
        }

        let mut lines = vec![format!(
            "Here {} {} CarConnect {what}{for_model} in {area}:",
            if dealers.len() == 1 { "is" } else { "are" },
            dealers.len()
        )];
        let mut items = vec![RichElement::info(lines[0].clone(), None)];
        for (i, d) in dealers.iter().enumerate() {
            lines.push(format!(
                "{}. {} ({}), {} {}. Phone {}. Open {}.",
                i + 1,
                d.name,
                d.kind.label(),
                d.address,
                d.postal_code,
                d.phone,
                d.hours.summary()
            ));
            items.push(RichElement::Divider);
            items.push(list_item(d));
        }
        let chips: Vec<Chip> = dealers
            .iter()
            .filter(|d| d.kind == DealerKind::Service)
            .map(|d| Chip::new(format!("Book a service at {}", d.id)))
            .collect();
        let mut rich = RichContent::new().card(items);
        if !chips.is_empty() {
            rich = rich.card(vec![RichElement::chips(chips)]);
        }
        let ids: Vec<Value> = dealers.iter().map(|d| Value::from(d.id.as_str())).collect();
        Ok(response
            .text(lines.join("\n"))
            .rich_content(rich)
            .set_param("dealer_options", ids))
    }
}

fn list_item(d: &Dealer) -> RichElement {
    RichElement::List(ListItem {
        title: format!("{} · {}", d.name, d.id),
        subtitle: Some(format!(
            "{}, {} · {} · {}",
            d.address,
            d.postal_code,
            d.hours.summary(),
            d.phone
        )),
        anchor: Some(Anchor::new(format!("tel:{}", d.phone))),
        ..ListItem::default()
    })
}

impl Handler for Nearby {
    fn handle<'a>(&'a self, call: &'a Call) -> HandlerFuture<'a> {
        Box::pin(async move { self.answer(call) })
    }
}
