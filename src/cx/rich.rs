//! Dialogflow Messenger rich content (the CX Messenger, not the ES-era shapes).
//!
//! Rich content is `{"richContent": [[element, ...], [element, ...]]}` inside a `payload` response
//! message: each inner array is one card (Dialogflow CX Messenger's rich response types,
//! <https://cloud.google.com/dialogflow/cx/docs/concept/integration/dialogflow-messenger/fulfillment>).
//! The CX Messenger reads `image.rawUrl` and `anchor.href`; the older `image.src.rawUrl` /
//! `actionLink` shapes seen in many samples do not render, so these types cannot produce them. Every element type the Messenger documents is here: `info`,
//! `description`, `image`, `button`, `list`, `accordion`, `chips`, `divider`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Rich content: a list of cards, each a list of elements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RichContent {
    cards: Vec<Vec<RichElement>>,
}

impl RichContent {
    /// No cards yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a card (skipped when it has no elements).
    pub fn card(mut self, elements: Vec<RichElement>) -> Self {
        if !elements.is_empty() {
            self.cards.push(elements);
        }
        self
    }

    /// True when there is no card.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The `payload` object: `{"richContent": [[...], ...]}`.
    pub fn into_payload(self) -> Map<String, Value> {
        let mut payload = Map::new();
        // A Vec of plain serializable elements always converts.
        let cards = serde_json::to_value(self.cards).unwrap_or(Value::Array(Vec::new()));
        payload.insert("richContent".into(), cards);
        payload
    }
}

/// One element of a card. Serialized with its `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RichElement {
    /// A title with subtitle, image and link.
    Info(Info),
    /// A title with paragraphs.
    Description(Description),
    /// An image.
    Image(Image),
    /// A button that opens a link or sends an event.
    Button(Button),
    /// A clickable list item.
    List(ListItem),
    /// An expandable item.
    Accordion(Accordion),
    /// Suggestion chips.
    Chips(Chips),
    /// A horizontal line.
    Divider,
}

impl RichElement {
    /// An `info` element with a title and an optional subtitle.
    pub fn info(title: impl Into<String>, subtitle: Option<String>) -> Self {
        RichElement::Info(Info {
            title: title.into(),
            subtitle,
            ..Default::default()
        })
    }

    /// A `description` element.
    pub fn description<I, S>(title: impl Into<String>, paragraphs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RichElement::Description(Description {
            title: title.into(),
            text: paragraphs.into_iter().map(Into::into).collect(),
        })
    }

    /// A `list` item with a title and an optional subtitle.
    pub fn list_item(title: impl Into<String>, subtitle: Option<String>) -> Self {
        RichElement::List(ListItem {
            title: title.into(),
            subtitle,
            ..Default::default()
        })
    }

    /// A `chips` element.
    pub fn chips(options: impl IntoIterator<Item = Chip>) -> Self {
        RichElement::Chips(Chips {
            options: options.into_iter().collect(),
        })
    }
}

/// `{"rawUrl": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// Image URL.
    pub raw_url: String,
}

/// `{"href": ..., "target": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    /// Link URL.
    pub href: String,
    /// Browsing context; the Messenger defaults to `_blank`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Anchor {
    /// A link opening in the Messenger's default target.
    pub fn new(href: impl Into<String>) -> Self {
        Anchor {
            href: href.into(),
            target: None,
        }
    }
}

/// A Messenger event sent when an element is clicked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Event name.
    pub name: String,
    /// Language of the event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language_code: String,
    /// Event parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
}

/// An `icon` of a button.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Icon {
    /// A Material icon name, e.g. `chevron_right`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A CSS colour, e.g. `#FF9800`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// `type: info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Title.
    pub title: String,
    /// Subtitle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// Link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

/// `type: description`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Title.
    pub title: String,
    /// Paragraphs.
    pub text: Vec<String>,
}

/// `type: image`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image URL.
    pub raw_url: String,
    /// Alt text.
    pub accessibility_text: String,
}

/// `type: button`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Button {
    /// Icon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<Icon>,
    /// Label.
    pub text: String,
    /// Link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// Event sent on click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

/// `type: list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListItem {
    /// Title.
    pub title: String,
    /// Subtitle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// Link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// Event sent on click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

/// `type: accordion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accordion {
    /// Title.
    pub title: String,
    /// Subtitle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// The text shown when expanded.
    pub text: String,
}

/// `type: chips`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chips {
    /// The chips.
    pub options: Vec<Chip>,
}

/// One chip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chip {
    /// Label (sent as the user's reply when clicked without an anchor).
    pub text: String,
    /// Image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// Link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

impl Chip {
    /// A plain text chip.
    pub fn new(text: impl Into<String>) -> Self {
        Chip {
            text: text.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cx::WebhookResponse;
    use serde_json::json;

    #[test]
    fn every_element_golden_in_fulfillment_messages() {
        let card = vec![
            RichElement::Info(Info {
                title: "Pune Service".into(),
                subtitle: Some("Open 9-18".into()),
                image: Some(ImageRef {
                    raw_url: "https://x/i.png".into(),
                }),
                anchor: Some(Anchor::new("https://x")),
            }),
            RichElement::description("Hours", ["Mon-Sat", "9-18"]),
            RichElement::Image(Image {
                raw_url: "https://x/car.png".into(),
                accessibility_text: "car".into(),
            }),
            RichElement::Button(Button {
                icon: Some(Icon {
                    kind: "chevron_right".into(),
                    color: Some("#FF9800".into()),
                }),
                text: "Book".into(),
                anchor: None,
                event: Some(Event {
                    name: "book".into(),
                    ..Default::default()
                }),
            }),
            RichElement::list_item("D-PUN-01", Some("Pune".into())),
            RichElement::Divider,
            RichElement::Accordion(Accordion {
                title: "Details".into(),
                text: "More".into(),
                ..Default::default()
            }),
            RichElement::chips([Chip::new("Yes"), Chip::new("No")]),
        ];
        let r = WebhookResponse::new().rich_content(RichContent::new().card(card).card(vec![]));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"fulfillmentResponse": {"messages": [{"payload": {"richContent": [[
                {"type": "info", "title": "Pune Service", "subtitle": "Open 9-18",
                 "image": {"rawUrl": "https://x/i.png"}, "anchor": {"href": "https://x"}},
                {"type": "description", "title": "Hours", "text": ["Mon-Sat", "9-18"]},
                {"type": "image", "rawUrl": "https://x/car.png", "accessibilityText": "car"},
                {"type": "button", "icon": {"type": "chevron_right", "color": "#FF9800"},
                 "text": "Book", "event": {"name": "book"}},
                {"type": "list", "title": "D-PUN-01", "subtitle": "Pune"},
                {"type": "divider"},
                {"type": "accordion", "title": "Details", "text": "More"},
                {"type": "chips", "options": [{"text": "Yes"}, {"text": "No"}]}
            ]]}}]}})
        );
        assert!(
            v.get("payload").is_none(),
            "rich content never goes top-level"
        );
    }

    #[test]
    fn empty_rich_content_adds_no_message() {
        let r = WebhookResponse::new().rich_content(RichContent::new().card(vec![]));
        assert!(r.messages().is_empty());
    }
}
