//! JSON written by hand where it runs on every call (the webhook's answer, each log line), byte
//! for byte what `serde_json` writes: strings that need no escaping, which are nearly all of them,
//! are found by whole words and blocks (see `needs_escaping`) and copied whole, where `serde_json`
//! looks up every byte in its escape table. Anything that does need escaping goes through
//! `serde_json`.

use serde_json::Value;

/// Appends `text` as a JSON string.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    if needs_escaping(text.as_bytes()) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` holds a byte JSON must escape: a control character (below 0x20), `"` or `\`.
///
/// Strings of 16 bytes or more go by 16-byte blocks, a loop the compiler turns into vector
/// compares, the last block overlapping the one before. Those of 8 to 15 bytes are read as two
/// overlapping eight-byte words and tested as `serde_json`'s reader tests them: for a word
/// `w`, `(w - 0x0101..01 * n) & !w & 0x8080..80` is non-zero exactly when some byte of `w` is
/// below `n` (Mycroft's test, exact for `n <= 128`), and a byte equal to `c` is a zero byte of
/// `w ^ (0x0101..01 * c)`. Shorter ones are looked up byte by byte in a table. A plain byte loop
/// cost over a hundred instructions for a six-letter key.
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w;
    let word_hit = |w: u64| {
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        (below(w, 0x20) | below(quote, 1) | below(backslash, 1)) & HIGH != 0
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let block_hit = |block: &[u8]| {
        block.iter().fold(false, |hit, &b| {
            hit | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    let n = bytes.len();
    if n >= 16 {
        let mut blocks = bytes.chunks_exact(16);
        blocks.any(block_hit) || (!blocks.remainder().is_empty() && block_hit(&bytes[n - 16..]))
    } else if n >= 8 {
        word_hit(word(&bytes[..8])) || word_hit(word(&bytes[n - 8..]))
    } else {
        bytes
            .iter()
            .fold(0, |any, &b| any | ESCAPED[usize::from(b)])
            != 0
    }
}

/// 1 for each byte JSON must escape.
static ESCAPED: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = 1;
        b += 1;
    }
    table[b'"' as usize] = 1;
    table[b'\\' as usize] = 1;
    table
};

/// Appends `"key":`.
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    push_str(out, key);
    out.push(b':');
}

/// Appends `value` as `serde_json` would.
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let _ = serde_json::to_writer(out, n);
        }
        Value::String(s) => push_str(out, s),
        Value::Array(items) => push_list(out, items, push_value),
        Value::Object(map) => push_map(out, map, push_value),
    }
}

/// Appends `[a,b,...]`, each item written by `item`.
pub fn push_list<T>(out: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, one) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, one);
    }
    out.push(b']');
}

/// Appends `{"k":v,...}` in the map's order, each value written by `value`.
pub fn push_map<'m, K, V: 'm>(
    out: &mut Vec<u8>,
    map: impl IntoIterator<Item = (&'m K, &'m V)>,
    value: impl Fn(&mut Vec<u8>, &V),
) where
    K: AsRef<str> + 'm + ?Sized,
{
    out.push(b'{');
    for (i, (k, v)) in map.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_key(out, k.as_ref());
        value(out, v);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_values_read_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "seventeen bytes!!",
            "a long plain string of many words, past several eight-byte words",
            "quote at the end of a word:\"",
            "\\ at the start",
            "eight+1\u{1f}",
            "\u{1f}",
            " ~\u{7e}\u{80}é",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}",
            "₹ ünïcode",
            "\u{7f}",
        ] {
            let mut ours = Vec::new();
            push_str(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        // Every ASCII byte, and a two-byte character, at every position of strings of 1 to 40
        // bytes: short words, overlapping words, whole and overlapping 16-byte blocks.
        let plain = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH";
        for len in 1..=40 {
            for at in 0..len {
                for c in (0..=0x7f_u8).map(char::from).chain(['é']) {
                    let mut text: String = plain[..len - 1].into();
                    text.insert(at, c);
                    let mut ours = Vec::new();
                    push_str(&mut ours, &text);
                    assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
                }
            }
        }
        let value = json!({
            "n": null, "t": true, "f": false, "i": -42, "u": 18_446_744_073_709_551_615_u64,
            "x": 0.1, "big": 1e300, "neg": -0.0, "s": "q\"uote", "empty": {}, "list": [],
            "nested": [{"a": [1, "two", {"b": null}]}, "\u{0}"],
        });
        let mut ours = Vec::new();
        push_value(&mut ours, &value);
        assert_eq!(String::from_utf8(ours).unwrap(), value.to_string());
    }
}
