//! `dealers.nearby`: up to five CarConnect dealers for a city or postal code, optionally only
//! showrooms or service centres, optionally only those carrying a car model.
//!
//! `location` may be a city name in any case or an alias (`Bombay`), a postal code (exact, else the
//! same postal district), or a `@sys.geo-city` / `@sys.location` object. The answer is text plus a
//! Messenger list and chips, and the session parameter `dealer_options` (the dealer ids shown, in
//! order) so a booking page can offer them. A place with no dealers gets the list of covered cities and
//! `location` rejected so the agent asks again.

use std::sync::Arc;

use serde_json::Value;

use crate::cx::Place;
use crate::cx::rich::{Anchor, ListItem};
use crate::cx::{Chip, RichContent, RichElement, WebhookResponse};
use crate::domain::vocabulary::{self, count};
use crate::domain::{Dealer, DealerKind};
use crate::store::StoreError;
use crate::store::catalog::{Catalog, DealerFilter};

use super::{Call, Deps, Reply, ask, reject};

/// Most dealers listed at once.
const MAX_DEALERS: u32 = 5;

/// The `dealers.nearby` handler.
pub async fn nearby(call: Call, deps: Arc<Deps>) -> Reply {
    let params = call.params();
    let place = match params.place("location") {
        Ok(Some(place)) => place,
        Ok(None) => {
            return Err(ask(WebhookResponse::new().text(
                "Which city or PIN code should I look in for a CarConnect dealer?",
            )));
        }
        Err(_) => {
            let answer = WebhookResponse::new()
                .text("Sorry, I didn't catch the place. Which city or PIN code should I look in?");
            return Err(ask(reject(&call, answer, "location")));
        }
    };
    let catalog = deps.store.catalog();
    let kind = params
        .text("dealer_kind")
        .ok()
        .flatten()
        .and_then(|k| vocabulary::dealer_kind(&k));
    let model_text = params.text("car_model").ok().flatten();
    let model = match &model_text {
        Some(text) => catalog.model(text)?,
        None => None,
    };
    let filter = DealerFilter {
        kind,
        model: model.as_ref(),
    };

    let (dealers, area) = search(&catalog, &place, filter)?;

    let (singular, plural) = match kind {
        Some(k) => (k.label().to_owned(), format!("{}s", k.label())),
        None => ("dealer".to_owned(), "dealers".to_owned()),
    };
    let for_model = model
        .as_ref()
        .map(|m| format!(" for the {}", m.name))
        .unwrap_or_default();
    let mut response = WebhookResponse::new();
    if let (Some(text), None) = (&model_text, &model) {
        response = response.text(format!(
            "I don't know the model \"{text}\", so I'm not filtering by model."
        ));
    }
    if dealers.is_empty() {
        let cities = catalog.city_names().await?;
        let answer = response.text(format!(
            "I couldn't find CarConnect {plural}{for_model} in {area}. We have dealers in {}. \
             Which city should I look in?",
            cities.join(", ")
        ));
        return Err(ask(reject(&call, answer, "location")));
    }

    let heading = format!(
        "Here {} {}{for_model} in {area}:",
        if dealers.len() == 1 { "is" } else { "are" },
        count(
            dealers.len(),
            &format!("CarConnect {singular}"),
            &format!("CarConnect {plural}")
        )
    );
    let (text, rich) = listing(heading, &dealers);
    let ids: Vec<Value> = dealers.iter().map(|d| Value::from(d.id.as_str())).collect();
    Ok(response
        .text(text)
        .rich_content(rich)
        .set_param("dealer_options", ids))
}

/// The answer listing `dealers` under `heading`: one numbered line each, and as rich content an
/// info card with a list item each, plus a chip per service centre to book there.
fn listing(heading: String, dealers: &[Dealer]) -> (String, RichContent) {
    let mut items = vec![RichElement::info(heading.clone(), None)];
    let mut lines = vec![heading];
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
    (lines.join("\n"), rich)
}

/// Up to [`MAX_DEALERS`] dealers for `place` (a postal code: that code, else its postal district;
/// else a city or its alias), and how to name the area searched (`PIN code 411001`, `Pune`). The one
/// search rule, shared with the dealer tool.
pub(crate) fn search(
    catalog: &Catalog<'_>,
    place: &Place,
    filter: DealerFilter<'_>,
) -> Result<(Vec<Dealer>, String), StoreError> {
    if let Some(code) = &place.postal_code {
        let found = catalog.dealers_near_postal_code(code, filter, MAX_DEALERS)?;
        return Ok((found, format!("PIN code {code}")));
    }
    let city = place.city.as_deref().unwrap_or_default();
    Ok(match catalog.city(city)? {
        Some(city) => (
            catalog.dealers_in_city(&city, filter, MAX_DEALERS)?,
            city.name,
        ),
        None => (Vec::new(), city.to_owned()),
    })
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
