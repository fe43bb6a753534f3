//! Owned serde data types for the three standard JSON benchmark files:
//! `twitter.json`, `citm_catalog.json` and `canada.json` (the `jsonfast`
//! benches decode into them, as serde-rs/json-benchmark does with its own).
//!
//! Every struct uses `deny_unknown_fields`, so a successful decode proves that
//! each key present in the file has a matching field.

#![allow(missing_docs, reason = "each field is the JSON key of the same name")]

/// Types for `twitter.json` (a Twitter search API response).
pub mod twitter {
    use serde::{Deserialize, Serialize};

    /// Root of `twitter.json`: a page of search results plus search metadata.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Twitter {
        pub statuses: Vec<Status>,
        pub search_metadata: SearchMetadata,
    }

    /// A placeholder for values that are always `null` (or arrays that are
    /// always empty) in the file; any non-empty object here fails to decode.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Empty {}

    /// One tweet; a retweet embeds the original tweet in `retweeted_status`.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Status {
        pub metadata: StatusMetadata,
        pub created_at: String,
        pub id: u64,
        pub id_str: String,
        pub text: String,
        pub source: String,
        pub truncated: bool,
        pub in_reply_to_status_id: Option<u64>,
        pub in_reply_to_status_id_str: Option<String>,
        pub in_reply_to_user_id: Option<u64>,
        pub in_reply_to_user_id_str: Option<String>,
        pub in_reply_to_screen_name: Option<String>,
        pub user: User,
        pub geo: Option<Empty>,
        pub coordinates: Option<Empty>,
        pub place: Option<Empty>,
        pub contributors: Option<Empty>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retweeted_status: Option<Box<Status>>,
        pub retweet_count: u64,
        pub favorite_count: u64,
        pub entities: StatusEntities,
        pub favorited: bool,
        pub retweeted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub possibly_sensitive: Option<bool>,
        pub lang: String,
    }

    /// Per-status search metadata (result type and language code).
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct StatusMetadata {
        pub result_type: String,
        pub iso_language_code: String,
    }

    /// The author of a status.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct User {
        pub id: u64,
        pub id_str: String,
        pub name: String,
        pub screen_name: String,
        pub location: String,
        pub description: String,
        pub url: Option<String>,
        pub entities: UserEntities,
        pub protected: bool,
        pub followers_count: u64,
        pub friends_count: u64,
        pub listed_count: u64,
        pub created_at: String,
        pub favourites_count: u64,
        pub utc_offset: Option<i64>,
        pub time_zone: Option<String>,
        pub geo_enabled: bool,
        pub verified: bool,
        pub statuses_count: u64,
        pub lang: String,
        pub contributors_enabled: bool,
        pub is_translator: bool,
        pub is_translation_enabled: bool,
        pub profile_background_color: String,
        pub profile_background_image_url: String,
        pub profile_background_image_url_https: String,
        pub profile_background_tile: bool,
        pub profile_image_url: String,
        pub profile_image_url_https: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub profile_banner_url: Option<String>,
        pub profile_link_color: String,
        pub profile_sidebar_border_color: String,
        pub profile_sidebar_fill_color: String,
        pub profile_text_color: String,
        pub profile_use_background_image: bool,
        pub default_profile: bool,
        pub default_profile_image: bool,
        pub following: bool,
        pub follow_request_sent: bool,
        pub notifications: bool,
    }

    /// URL entities found in a user's profile `url` and `description`.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct UserEntities {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub url: Option<UserUrls>,
        pub description: UserUrls,
    }

    /// A list of URL entities inside one user profile field.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct UserUrls {
        pub urls: Vec<Url>,
    }

    /// A shortened URL and where it appears in the text.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Url {
        pub url: String,
        pub expanded_url: String,
        pub display_url: String,
        pub indices: Indices,
    }

    /// Start and end character offsets of an entity within the text.
    pub type Indices = (u64, u64);

    /// Entities (hashtags, symbols, URLs, mentions, media) parsed from a status.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct StatusEntities {
        pub hashtags: Vec<Hashtag>,
        pub symbols: Vec<Empty>,
        pub urls: Vec<Url>,
        pub user_mentions: Vec<UserMention>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub media: Option<Vec<Media>>,
    }

    /// A `#hashtag` in a status.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Hashtag {
        pub text: String,
        pub indices: Indices,
    }

    /// An `@mention` of another user in a status.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct UserMention {
        pub screen_name: String,
        pub name: String,
        pub id: u64,
        pub id_str: String,
        pub indices: Indices,
    }

    /// A photo attached to a status.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Media {
        pub id: u64,
        pub id_str: String,
        pub indices: Indices,
        pub media_url: String,
        pub media_url_https: String,
        pub url: String,
        pub display_url: String,
        pub expanded_url: String,
        #[serde(rename = "type")]
        pub media_type: String,
        pub sizes: Sizes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_status_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source_status_id_str: Option<String>,
    }

    /// The four rendered sizes of a media item.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Sizes {
        pub medium: Size,
        pub small: Size,
        pub thumb: Size,
        pub large: Size,
    }

    /// Width, height and resize mode of one media size.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Size {
        pub w: u64,
        pub h: u64,
        pub resize: String,
    }

    /// Metadata about the search query that produced the statuses.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct SearchMetadata {
        pub completed_in: f64,
        pub max_id: u64,
        pub max_id_str: String,
        pub next_results: String,
        pub query: String,
        pub refresh_url: String,
        pub count: u64,
        pub since_id: u64,
        pub since_id_str: String,
    }
}

/// Types for `citm_catalog.json` (a concert-hall event and ticket catalog).
pub mod citm {
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// Identifier lookup table keyed by a numeric string (e.g. `"205705993"`).
    pub type IdMap<T> = BTreeMap<String, T>;

    /// Root of `citm_catalog.json`: name tables, events and performances.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct CitmCatalog {
        pub area_names: IdMap<String>,
        pub audience_sub_category_names: IdMap<String>,
        pub block_names: IdMap<String>,
        pub events: IdMap<Event>,
        pub performances: Vec<Performance>,
        pub seat_category_names: IdMap<String>,
        pub sub_topic_names: IdMap<String>,
        pub subject_names: IdMap<String>,
        pub topic_names: IdMap<String>,
        pub topic_sub_topics: IdMap<Vec<u64>>,
        /// Keyed by venue code (e.g. `"PLEYEL_PLEYEL"`), not a number.
        pub venue_names: BTreeMap<String, String>,
    }

    /// An event (a show that may have several performances).
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Event {
        pub description: Option<String>,
        pub id: u64,
        pub logo: Option<String>,
        pub name: String,
        pub sub_topic_ids: Vec<u64>,
        pub subject_code: Option<String>,
        pub subtitle: Option<String>,
        pub topic_ids: Vec<u64>,
    }

    /// One dated performance of an event, with its prices and seating.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Performance {
        pub event_id: u64,
        pub id: u64,
        pub logo: Option<String>,
        pub name: Option<String>,
        pub prices: Vec<Price>,
        pub seat_categories: Vec<SeatCategory>,
        pub seat_map_image: Option<String>,
        /// Start time in milliseconds since the Unix epoch.
        pub start: u64,
        pub venue_code: String,
    }

    /// Ticket price for one seat category and audience sub-category.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Price {
        pub amount: u64,
        pub audience_sub_category_id: u64,
        pub seat_category_id: u64,
    }

    /// A seat category and the hall areas it covers.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SeatCategory {
        pub areas: Vec<Area>,
        pub seat_category_id: u64,
    }

    /// A hall area and the seating blocks in it.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Area {
        pub area_id: u64,
        pub block_ids: Vec<u64>,
    }
}

/// Types for `canada.json` (a GeoJSON outline of Canada).
pub mod canada {
    use serde::{Deserialize, Serialize};

    /// Root of `canada.json`: a GeoJSON `FeatureCollection`.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Canada {
        #[serde(rename = "type")]
        pub obj_type: String,
        pub features: Vec<Feature>,
    }

    /// A GeoJSON `Feature`: a geometry with properties.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Feature {
        #[serde(rename = "type")]
        pub obj_type: String,
        pub properties: Properties,
        pub geometry: Geometry,
    }

    /// Properties of a feature (just its name).
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Properties {
        pub name: String,
    }

    /// A GeoJSON `Polygon`: a list of rings, each a list of points.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct Geometry {
        #[serde(rename = "type")]
        pub obj_type: String,
        pub coordinates: Vec<Vec<Point>>,
    }

    /// A `[longitude, latitude]` pair.
    pub type Point = (f64, f64);
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    /// Replaces every number with its `f64` value, so that an integer written
    /// as `47` in the file compares equal to the `47.0` an `f64` field emits.
    fn numbers_as_f64(v: Value) -> Value {
        match v {
            Value::Number(n) => Value::from(n.as_f64().expect("finite number")),
            Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
            }
            other => other,
        }
    }

    /// Decodes `name` into `T`, re-encodes it, and compares with the raw `Value`.
    /// Returns `None` (after a message) if the file is absent.
    fn roundtrip<T: DeserializeOwned + Serialize>(name: &str) -> Option<(Value, Value)> {
        let path = crate::data_dir().join("json").join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipping: cannot read {}: {e}", path.display());
                return None;
            }
        };
        let typed: T = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{name} does not decode into the typed model: {e}"));
        let reencoded = serde_json::to_value(&typed).expect("re-serialise");
        let original: Value = serde_json::from_slice(&bytes).expect("decode as Value");
        Some((reencoded, original))
    }

    #[test]
    fn twitter_roundtrip() {
        if let Some((re, orig)) = roundtrip::<super::twitter::Twitter>("twitter.json") {
            assert!(
                re == orig,
                "twitter.json: re-serialised Value differs from original"
            );
        }
    }

    #[test]
    fn citm_roundtrip() {
        if let Some((re, orig)) = roundtrip::<super::citm::CitmCatalog>("citm_catalog.json") {
            assert!(
                re == orig,
                "citm_catalog.json: re-serialised Value differs from original"
            );
        }
    }

    #[test]
    fn canada_roundtrip() {
        if let Some((re, orig)) = roundtrip::<super::canada::Canada>("canada.json") {
            // canada.json writes 46 coordinates as integers (e.g. `[-128,51.72]`),
            // which `f64` fields re-emit as floats; `Value` keeps integer and float
            // numbers distinct, so compare numerically. All other content must match.
            assert!(
                numbers_as_f64(re) == numbers_as_f64(orig),
                "canada.json: re-serialised Value differs from original"
            );
        }
    }
}
