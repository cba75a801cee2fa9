//! JSON as NestJS/ts-proto peers send and read it.
//!
//! Nest peers pass ts-proto objects straight to `JSON.stringify`, which is not canonical proto3
//! JSON: camelCase keys, enums as numbers, 64-bit integers as numbers, `Timestamp` as
//! `{seconds, nanos}` (or an ISO string from a peer that uses `Date`), bytes as a serialized
//! `Uint8Array` (`{"0":1,"1":2}`), a `Buffer` (`{"type":"Buffer","data":[..]}`) or base64.
//! Decoding accepts all of these (and proto field names next to camelCase ones); encoding
//! writes exactly what a ts-proto NestJS peer writes: every scalar, list and map field (so
//! `project.tags.length` works on the other side), unset messages and optionals left out,
//! enums and 64-bit integers as numbers, timestamps as `{seconds, nanos}`, bytes as a
//! `Uint8Array` object.
//!
//! Generated messages implement `serde::Serialize`/`Deserialize` by naming, per field, a
//! *codec*: a zero-sized type in this module that knows how one proto kind travels in JSON.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

pub use serde::de::IgnoredAny;

use crate::RpcError;

/// How values of type `T` travel in JSON.
pub trait Codec<T> {
    /// Writes `value`.
    fn ser<S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error>;
    /// Reads a value; JSON `null` never reaches this (it means the default).
    fn de<'de, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error>;
}

/// A proto enum, so its values can be read by name as well as by number.
pub trait ProtoEnum {
    /// The number of the value named `name` (the proto name, e.g. `PROJECT_STATUS_ACTIVE`).
    fn number_of(name: &str) -> Option<i32>;
}

/// A generated message whose fields are written into, and read one by one from, a JSON object.
/// Its `serde` impls ([`serialize_message`], [`deserialize_message`]) go through this trait.
pub trait JsonMessage: Default {
    /// The proto full name, for error messages.
    const FULL_NAME: &'static str;
    /// Writes the fields that travel (every scalar, list and map; messages and optionals when
    /// set) as entries of `map`.
    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
    /// Reads the value of `key` into `self`. Returns `false` for an unknown key, whose value
    /// the caller then skips.
    fn merge_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error>;
}

/// Serializes a generated message as a JSON object.
pub fn serialize_message<S, M>(message: &M, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    M: JsonMessage,
{
    let mut map = serializer.serialize_map(None)?;
    message.write_fields(&mut map)?;
    map.end()
}

/// `serde::Serialize` and `Deserialize` of generated messages, through their [`JsonMessage`]
/// impl: `serde_impls!(project::Source);`.
#[doc(hidden)]
#[macro_export]
macro_rules! __serde_impls {
    ($message:ty) => {
        #[allow(deprecated)]
        impl $crate::serde::Serialize for $message {
            fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
            where
                S: $crate::serde::Serializer,
            {
                $crate::codegen::json::serialize_message(self, serializer)
            }
        }
        #[allow(deprecated)]
        impl<'de> $crate::serde::Deserialize<'de> for $message {
            fn deserialize<D>(deserializer: D) -> ::core::result::Result<Self, D::Error>
            where
                D: $crate::serde::Deserializer<'de>,
            {
                $crate::codegen::json::deserialize_message(deserializer)
            }
        }
    };
}

/// Deserializes a generated message from a JSON object (unknown keys are skipped).
pub fn deserialize_message<'de, D, M>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    M: JsonMessage,
{
    struct MessageVisitor<M>(PhantomData<M>);
    impl<'de, M: JsonMessage> Visitor<'de> for MessageVisitor<M> {
        type Value = M;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a JSON object for {}", M::FULL_NAME)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<M, A::Error> {
            let mut out = M::default();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                if !out.merge_field(key.as_str(), &mut map)? {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(MessageVisitor(PhantomData))
}

/// A JSON object key, borrowed from the input when it can be.
pub enum Key<'de> {
    /// Borrowed from the input.
    Borrowed(&'de str),
    /// Copied (the key had escapes, or the input is not borrowable).
    Owned(String),
}

impl Key<'_> {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Serializes `value` with codec `C`: `map.serialize_entry("id", &ser::<Str, _>(&self.id))`.
pub fn ser<C: Codec<T>, T>(value: &T) -> Ser<'_, C, T> {
    Ser(value, PhantomData)
}

/// A value paired with the codec that writes it.
pub struct Ser<'a, C, T>(&'a T, PhantomData<C>);

impl<C: Codec<T>, T> Serialize for Ser<'_, C, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        C::ser(self.0, serializer)
    }
}

/// A value read with codec `C`; JSON `null` gives the default value.
pub struct De<C, T>(pub T, PhantomData<C>);

impl<'de, C: Codec<T>, T: Default> Deserialize<'de> for De<C, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NullOr<C, T>(PhantomData<(C, T)>);
        impl<'de, C: Codec<T>, T: Default> Visitor<'de> for NullOr<C, T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
                C::de(d)
            }
        }
        deserializer
            .deserialize_option(NullOr::<C, T>(PhantomData))
            .map(|v| De(v, PhantomData))
    }
}

struct Inner<C, T>(T, PhantomData<C>);
impl<'de, C: Codec<T>, T> Deserialize<'de> for Inner<C, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        C::de(deserializer).map(|v| Inner(v, PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

/// `string`.
pub struct Str;
impl Codec<String> for Str {
    fn ser<S: Serializer>(v: &String, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        String::deserialize(d)
    }
}

/// `bool`; also reads `"true"`/`"false"`.
pub struct Bool;
impl Codec<bool> for Bool {
    fn ser<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
                match v {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads an integer from a JSON number (integral floats too) or a decimal string.
struct IntVisitor<T>(PhantomData<T>);

impl<T> Visitor<'_> for IntVisitor<T>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer ({})", std::any::type_name::<T>())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() == 0.0 && v.abs() < 9.3e18 {
            if v < 0.0 {
                self.visit_i64(v as i64)
            } else {
                self.visit_u64(v as u64)
            }
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        let t = v.trim();
        if let Ok(n) = t.parse::<T>() {
            return Ok(n);
        }
        // "1e3" and "12.0" are legal proto3 JSON spellings of integers.
        match t.parse::<f64>() {
            Ok(f) => self.visit_f64(f),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

macro_rules! int_codec {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $ser:ident) => {
        $(#[$doc])*
        pub struct $name;
        impl Codec<$ty> for $name {
            fn ser<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.$ser(*v)
            }
            fn de<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                d.deserialize_any(IntVisitor::<$ty>(PhantomData))
            }
        }
    };
}

int_codec!(
    /// `int32`, `sint32`, `sfixed32`; also reads decimal strings.
    I32, i32, serialize_i32
);
int_codec!(
    /// `uint32`, `fixed32`; also reads decimal strings.
    U32, u32, serialize_u32
);
int_codec!(
    /// `int64`, `sint64`, `sfixed64`: written as a JSON number (ts-proto `forceLong=number`),
    /// read from a number or a string.
    I64, i64, serialize_i64
);
int_codec!(
    /// `uint64`, `fixed64`: written as a JSON number, read from a number or a string.
    U64, u64, serialize_u64
);

struct FloatVisitor;
impl Visitor<'_> for FloatVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => v
                .trim()
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

fn ser_float<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(v)
    }
}

/// `double`; non-finite values travel as `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub struct F64;
impl Codec<f64> for F64 {
    fn ser<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        ser_float(*v, s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(FloatVisitor)
    }
}

/// `float`; non-finite values travel as `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub struct F32;
impl Codec<f32> for F32 {
    fn ser<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f32(*v)
        } else {
            ser_float(f64::from(*v), s)
        }
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        d.deserialize_any(FloatVisitor).map(|v| v as f32)
    }
}

/// `bytes`: written the way a ts-proto NestJS peer's `JSON.stringify` writes a `Uint8Array`
/// (`{"0":1,"1":2}`), so a Rust peer is indistinguishable from a Nest one; read from that,
/// base64 (standard or URL-safe, padded or not), an array of numbers, or a Node `Buffer`
/// (`{"type":"Buffer","data":[..]}`).
pub struct Bytes;
impl Codec<Vec<u8>> for Bytes {
    fn ser<S: Serializer>(v: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for (i, b) in v.iter().enumerate() {
            map.serialize_entry(&IndexKey(i), b)?;
        }
        map.end()
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(BytesVisitor)
    }
}

/// An array index as a JSON object key, without allocating.
struct IndexKey(usize);
impl Serialize for IndexKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = itoa_buf(self.0);
        s.serialize_str(buf.as_str())
    }
}

struct SmallStr {
    bytes: [u8; 20],
    start: usize,
}
impl SmallStr {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
    }
}
fn itoa_buf(mut n: usize) -> SmallStr {
    let mut bytes = [0u8; 20];
    let mut i = bytes.len();
    loop {
        i -= 1;
        bytes[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    SmallStr { bytes, start: i }
}

/// Decodes base64 in any of the four common alphabets/paddings.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let t = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(t).ok())
}

struct BytesVisitor;
impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("base64 text, an array of bytes, or a serialized Buffer/Uint8Array")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        decode_base64(v).ok_or_else(|| E::custom("invalid base64 in a bytes field"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        // {"type":"Buffer","data":[..]} or {"0":1,"1":2,...}
        let mut indexed: Vec<(usize, u8)> = Vec::new();
        let mut data = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_str() {
                "data" => data = Some(map.next_value::<Vec<u8>>()?),
                "type" => {
                    map.next_value::<IgnoredAny>()?;
                }
                k => match k.parse::<usize>() {
                    Ok(i) => indexed.push((i, map.next_value::<u8>()?)),
                    Err(_) => return Err(de::Error::unknown_field(k, &["type", "data"])),
                },
            }
        }
        if let Some(data) = data {
            return Ok(data);
        }
        indexed.sort_unstable_by_key(|(i, _)| *i);
        Ok(indexed.into_iter().map(|(_, b)| b).collect())
    }
}

/// An enum field (`i32` in prost): written as its number (ts-proto's numeric enums), read from
/// a number or the value's proto name.
pub struct Enum<E>(PhantomData<E>);
impl<E: ProtoEnum> Codec<i32> for Enum<E> {
    fn ser<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*v)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        struct V<E>(PhantomData<E>);
        impl<E: ProtoEnum> Visitor<'_> for V<E> {
            type Value = i32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a value of {}", std::any::type_name::<E>())
            }
            fn visit_i64<Er: de::Error>(self, v: i64) -> Result<i32, Er> {
                IntVisitor::<i32>(PhantomData).visit_i64(v)
            }
            fn visit_u64<Er: de::Error>(self, v: u64) -> Result<i32, Er> {
                IntVisitor::<i32>(PhantomData).visit_u64(v)
            }
            fn visit_f64<Er: de::Error>(self, v: f64) -> Result<i32, Er> {
                IntVisitor::<i32>(PhantomData).visit_f64(v)
            }
            fn visit_str<Er: de::Error>(self, v: &str) -> Result<i32, Er> {
                E::number_of(v)
                    .or_else(|| v.parse().ok())
                    .ok_or_else(|| Er::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V::<E>(PhantomData))
    }
}

/// A message field, written and read by the message's own serde impls (works through `Box`).
pub struct Msg;
impl<T: Serialize + DeserializeOwned> Codec<T> for Msg {
    fn ser<S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::deserialize(d).map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// A proto3 `optional` field, a message field, or a wrapper type: `None` is left out.
pub struct Opt<C>(PhantomData<C>);
impl<C: Codec<T>, T> Codec<Option<T>> for Opt<C> {
    fn ser<S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => C::ser(v, s),
            None => s.serialize_none(),
        }
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        C::de(d).map(Some)
    }
}

/// A `repeated` field: a JSON array (`null` items are rejected).
pub struct List<C>(PhantomData<C>);
impl<C: Codec<T>, T> Codec<Vec<T>> for List<C> {
    fn ser<S: Serializer>(v: &Vec<T>, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v {
            seq.serialize_element(&Ser::<C, T>(item, PhantomData))?;
        }
        seq.end()
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        struct V<C, T>(PhantomData<(C, T)>);
        impl<'de, C: Codec<T>, T> Visitor<'de> for V<C, T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element::<Inner<C, T>>()? {
                    out.push(item.0);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V::<C, T>(PhantomData))
    }
}

/// Map keys: JSON object keys are strings, whatever the proto key type.
pub trait KeyCodec<K> {
    /// The key as JSON object key text.
    fn key_to_string(key: &K) -> String;
    /// Parses object key text.
    fn key_from_str(text: &str) -> Option<K>;
}

impl KeyCodec<String> for Str {
    fn key_to_string(key: &String) -> String {
        key.clone()
    }
    fn key_from_str(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
}

macro_rules! parsed_key {
    ($codec:ty, $ty:ty) => {
        impl KeyCodec<$ty> for $codec {
            fn key_to_string(key: &$ty) -> String {
                key.to_string()
            }
            fn key_from_str(text: &str) -> Option<$ty> {
                text.parse().ok()
            }
        }
    };
}
parsed_key!(Bool, bool);
parsed_key!(I32, i32);
parsed_key!(U32, u32);
parsed_key!(I64, i64);
parsed_key!(U64, u64);

/// A `map<K, V>` field: a JSON object.
pub struct Map<K, V>(PhantomData<(K, V)>);
impl<K, V, KT, VT> Codec<HashMap<KT, VT>> for Map<K, V>
where
    K: KeyCodec<KT>,
    V: Codec<VT>,
    KT: Eq + Hash,
{
    fn ser<S: Serializer>(v: &HashMap<KT, VT>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for (k, val) in v {
            map.serialize_entry(&K::key_to_string(k), &Ser::<V, VT>(val, PhantomData))?;
        }
        map.end()
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<KT, VT>, D::Error> {
        struct Vis<K, V, KT, VT>(PhantomData<(K, V, KT, VT)>);
        impl<'de, K, V, KT, VT> Visitor<'de> for Vis<K, V, KT, VT>
        where
            K: KeyCodec<KT>,
            V: Codec<VT>,
            KT: Eq + Hash,
        {
            type Value = HashMap<KT, VT>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = HashMap::with_capacity(map.size_hint().unwrap_or(0).min(4096));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let k = K::key_from_str(key.as_str()).ok_or_else(|| {
                        de::Error::invalid_value(de::Unexpected::Str(key.as_str()), &"a map key")
                    })?;
                    out.insert(k, map.next_value::<Inner<V, VT>>()?.0);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Vis::<K, V, KT, VT>(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Well-known types
// ---------------------------------------------------------------------------------------------

/// `google.protobuf.Empty` (`()` in prost): `{}`.
pub struct Empty;
impl Codec<()> for Empty {
    fn ser<S: Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        IgnoredAny::deserialize(d).map(|_| ())
    }
}

/// `google.protobuf.Timestamp` written as `{"seconds":..,"nanos":..}`: what a ts-proto peer
/// generated with `nestJs=true` (whose `useDate` default is off) sends and reads. Read from
/// that or an RFC 3339 string (a peer that uses `Date`, or canonical proto3 JSON).
pub struct Timestamp;
impl Codec<prost_types::Timestamp> for Timestamp {
    fn ser<S: Serializer>(v: &prost_types::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        ser_seconds_nanos(v.seconds, v.nanos, s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Timestamp, D::Error> {
        d.deserialize_any(TimeVisitor::<true>)
    }
}

/// `google.protobuf.Timestamp` written as an RFC 3339 string (canonical proto3 JSON, and what
/// `JSON.stringify` makes of a `Date`); read like [`Timestamp`].
pub struct TimestampRfc3339;
impl Codec<prost_types::Timestamp> for TimestampRfc3339 {
    fn ser<S: Serializer>(v: &prost_types::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Timestamp, D::Error> {
        Timestamp::de(d)
    }
}

fn ser_seconds_nanos<S: Serializer>(seconds: i64, nanos: i32, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(2))?;
    map.serialize_entry("seconds", &seconds)?;
    map.serialize_entry("nanos", &nanos)?;
    map.end()
}

/// `google.protobuf.Duration` written as `{"seconds":..,"nanos":..}` (ts-proto's shape);
/// read from that or a proto3 JSON string such as `"1.5s"`.
pub struct Duration;
impl Codec<prost_types::Duration> for Duration {
    fn ser<S: Serializer>(v: &prost_types::Duration, s: S) -> Result<S::Ok, S::Error> {
        ser_seconds_nanos(v.seconds, v.nanos, s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Duration, D::Error> {
        let t = d.deserialize_any(TimeVisitor::<false>)?;
        Ok(prost_types::Duration {
            seconds: t.seconds,
            nanos: t.nanos,
        })
    }
}

/// Reads `{seconds, nanos}`, or a string: RFC 3339 when `TIMESTAMP`, `"1.5s"` otherwise.
struct TimeVisitor<const TIMESTAMP: bool>;
impl<'de, const TIMESTAMP: bool> Visitor<'de> for TimeVisitor<TIMESTAMP> {
    type Value = prost_types::Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if TIMESTAMP {
            f.write_str("an RFC 3339 timestamp or {seconds, nanos}")
        } else {
            f.write_str("a duration such as \"1.5s\" or {seconds, nanos}")
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if TIMESTAMP {
            v.trim().parse::<prost_types::Timestamp>().ok()
        } else {
            v.trim()
                .parse::<prost_types::Duration>()
                .ok()
                .map(|d| prost_types::Timestamp {
                    seconds: d.seconds,
                    nanos: d.nanos,
                })
        }
        .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = prost_types::Timestamp::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_str() {
                "seconds" => out.seconds = map.next_value::<De<I64, i64>>()?.0,
                "nanos" => out.nanos = map.next_value::<De<I32, i32>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `google.protobuf.FieldMask`: written as a `string[]` of camelCase paths (ts-proto's
/// shape); read from that or the proto3 comma-separated string.
pub struct FieldMask;
impl Codec<prost_types::FieldMask> for FieldMask {
    fn ser<S: Serializer>(v: &prost_types::FieldMask, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.paths.iter())
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::FieldMask, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Paths {
            Joined(String),
            List(Vec<String>),
        }
        let paths = match Paths::deserialize(d)? {
            Paths::Joined(s) if s.is_empty() => Vec::new(),
            Paths::Joined(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
            Paths::List(v) => v,
        };
        Ok(prost_types::FieldMask { paths })
    }
}

/// `google.protobuf.Struct`: a plain JSON object.
pub struct Struct;
impl Codec<prost_types::Struct> for Struct {
    fn ser<S: Serializer>(v: &prost_types::Struct, s: S) -> Result<S::Ok, S::Error> {
        crate::wkt::struct_to_json(v).serialize(s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Struct, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Object(map) => Ok(crate::wkt::struct_from_json(map)),
            other => Err(de::Error::custom(format!(
                "expected a JSON object for google.protobuf.Struct, found {other}"
            ))),
        }
    }
}

/// `google.protobuf.Value`: any JSON value.
pub struct Value;
impl Codec<prost_types::Value> for Value {
    fn ser<S: Serializer>(v: &prost_types::Value, s: S) -> Result<S::Ok, S::Error> {
        crate::wkt::value_to_json(v).serialize(s)
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Value, D::Error> {
        serde_json::Value::deserialize(d).map(crate::wkt::value_from_json)
    }
}

/// `google.protobuf.ListValue`: a JSON array.
pub struct ListValue;
impl Codec<prost_types::ListValue> for ListValue {
    fn ser<S: Serializer>(v: &prost_types::ListValue, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.values.iter().map(crate::wkt::value_to_json))
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::ListValue, D::Error> {
        let items = Vec::<serde_json::Value>::deserialize(d)?;
        Ok(prost_types::ListValue {
            values: items.into_iter().map(crate::wkt::value_from_json).collect(),
        })
    }
}

/// `google.protobuf.Any`: `{"typeUrl": "...", "value": "<base64>"}` (ts-proto's shape).
pub struct Any;
impl Codec<prost_types::Any> for Any {
    fn ser<S: Serializer>(v: &prost_types::Any, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("typeUrl", &v.type_url)?;
        map.serialize_entry("value", &Ser::<Bytes, Vec<u8>>(&v.value, PhantomData))?;
        map.end()
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<prost_types::Any, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = prost_types::Any;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with typeUrl and value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = prost_types::Any::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "typeUrl" | "type_url" | "@type" => {
                            out.type_url = map.next_value::<De<Str, String>>()?.0
                        }
                        "value" => out.value = map.next_value::<De<Bytes, Vec<u8>>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl ProtoEnum for prost_types::NullValue {
    fn number_of(name: &str) -> Option<i32> {
        Self::from_str_name(name).map(|v| v as i32)
    }
}

// ---------------------------------------------------------------------------------------------
// Whole payloads
// ---------------------------------------------------------------------------------------------

/// Encodes a payload as JSON bytes (what `JSON.stringify` would send). `()` (an rpc taking or
/// returning `google.protobuf.Empty`) is `{}`.
pub fn encode<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, RpcError> {
    if (value as &dyn std::any::Any).is::<()>() {
        return Ok(b"{}".to_vec());
    }
    // serde_json starts at 128 bytes; most replies are a little larger, and one allocation of
    // the right size is cheaper than growing.
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| RpcError::internal(format!("cannot encode JSON: {e}")))?;
    Ok(out)
}

/// The buffer [`encode`] starts with.
const ENCODE_CAPACITY: usize = 512;

/// Decodes a JSON payload. An empty payload decodes as the default message (NestJS sends
/// nothing for `undefined`). Errors are [`crate::codes::INVALID_ARGUMENT`] and say where.
pub fn decode<T: DeserializeOwned + Default + 'static>(bytes: &[u8]) -> Result<T, RpcError> {
    if bytes.iter().all(u8::is_ascii_whitespace)
        || std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>()
    {
        // `()` (google.protobuf.Empty) accepts whatever a peer sends: `{}`, null, nothing.
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        RpcError::invalid_argument(format!(
            "cannot decode {} from JSON: {e}",
            short_type_name::<T>()
        ))
    })
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Message types without a JSON mapping in prost-types (descriptors, `Api`, `Type`): base64 of
/// their protobuf encoding.
pub struct ProtoBytes;
impl<T: prost::Message + Default> Codec<T> for ProtoBytes {
    fn ser<S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v.encode_to_vec()))
    }
    fn de<'de, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let bytes = Bytes::de(d)?;
        T::decode(bytes.as_slice()).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `json` with codec `C` (JSON `null` is the default, as in a message field).
    fn read<C: Codec<T>, T: Default>(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str::<De<C, T>>(json).map(|d| d.0)
    }

    /// Writes `value` with codec `C`.
    fn write<C: Codec<T>, T>(value: &T) -> String {
        serde_json::to_string(&ser::<C, T>(value)).unwrap()
    }

    #[test]
    fn integers_are_numbers_out_and_numbers_or_decimal_strings_in() {
        assert_eq!(
            write::<I64, i64>(&-9_007_199_254_740_993),
            "-9007199254740993"
        );
        assert_eq!(read::<I64, i64>("\"-42\"").unwrap(), -42);
        assert_eq!(read::<I64, i64>("42").unwrap(), 42);
        assert_eq!(
            read::<U64, u64>("\"18446744073709551615\"").unwrap(),
            u64::MAX
        );
        assert_eq!(read::<I32, i32>("7.0").unwrap(), 7, "an integral float");
        assert_eq!(read::<I32, i32>("null").unwrap(), 0, "null is the default");
        for bad in ["7.5", "\"seven\"", "4294967296", "true"] {
            assert!(read::<I32, i32>(bad).is_err(), "{bad} is not an int32");
        }
        assert!(read::<U32, u32>("-1").is_err(), "negative uint32");
    }

    #[test]
    fn non_finite_floats_travel_as_strings() {
        assert_eq!(write::<F64, f64>(&f64::NAN), "\"NaN\"");
        assert_eq!(write::<F64, f64>(&f64::NEG_INFINITY), "\"-Infinity\"");
        assert_eq!(write::<F32, f32>(&f32::INFINITY), "\"Infinity\"");
        assert_eq!(write::<F64, f64>(&1.5), "1.5");
        assert!(read::<F64, f64>("\"NaN\"").unwrap().is_nan());
        assert_eq!(
            read::<F64, f64>("\"-Infinity\"").unwrap(),
            f64::NEG_INFINITY
        );
        assert_eq!(read::<F32, f32>("\" 2.5 \"").unwrap(), 2.5);
        assert_eq!(read::<F64, f64>("3").unwrap(), 3.0);
        assert!(read::<F64, f64>("\"lots\"").is_err());
    }

    #[test]
    fn bools_read_from_json_booleans_and_their_strings() {
        assert!(read::<Bool, bool>("true").unwrap());
        assert!(!read::<Bool, bool>("null").unwrap());
        assert!(read::<Bool, bool>("\"yes\"").is_err());
    }

    #[test]
    fn bytes_are_written_like_a_uint8array_and_read_in_every_shape_a_peer_sends() {
        let bytes = vec![1u8, 2, 255];
        assert_eq!(
            write::<Bytes, Vec<u8>>(&bytes),
            r#"{"0":1,"1":2,"2":255}"#,
            "what JSON.stringify makes of a Uint8Array"
        );
        for json in [
            r#"{"0":1,"1":2,"2":255}"#,
            r#"{"2":255,"0":1,"1":2}"#,
            r#"{"type":"Buffer","data":[1,2,255]}"#,
            "[1,2,255]",
            "\"AQL/\"",
            "\"AQL_\"",
        ] {
            assert_eq!(read::<Bytes, Vec<u8>>(json).unwrap(), bytes, "{json}");
        }
        assert_eq!(read::<Bytes, Vec<u8>>("\"AQI=\"").unwrap(), vec![1, 2]);
        assert_eq!(
            read::<Bytes, Vec<u8>>("\"AQI\"").unwrap(),
            vec![1, 2],
            "unpadded"
        );
        assert!(read::<Bytes, Vec<u8>>("\"not base64!\"").is_err());
        assert!(read::<Bytes, Vec<u8>>(r#"{"x":1}"#).is_err());
        assert!(read::<Bytes, Vec<u8>>("[256]").is_err());
        assert_eq!(write::<Bytes, Vec<u8>>(&Vec::new()), "{}");
    }

    #[test]
    fn enums_are_numbers_out_and_numbers_or_names_in() {
        type Null = Enum<prost_types::NullValue>;
        assert_eq!(write::<Null, i32>(&0), "0");
        assert_eq!(read::<Null, i32>("0").unwrap(), 0);
        assert_eq!(read::<Null, i32>("\"NULL_VALUE\"").unwrap(), 0);
        assert!(read::<Null, i32>("\"NO_SUCH_VALUE\"").is_err());
    }

    #[test]
    fn optional_lists_and_maps() {
        assert_eq!(write::<Opt<Str>, Option<String>>(&None), "null");
        assert_eq!(read::<Opt<I32>, Option<i32>>("5").unwrap(), Some(5));
        assert_eq!(read::<Opt<I32>, Option<i32>>("null").unwrap(), None);
        let list = vec![1i64, 2];
        assert_eq!(write::<List<I64>, Vec<i64>>(&list), "[1,2]");
        assert_eq!(read::<List<I64>, Vec<i64>>("[\"1\",2]").unwrap(), list);
        assert_eq!(
            read::<List<I64>, Vec<i64>>("null").unwrap(),
            Vec::<i64>::new()
        );
        let map: HashMap<i32, String> = read::<Map<I32, Str>, _>(r#"{"7":"seven"}"#).unwrap();
        assert_eq!(map.get(&7).map(String::as_str), Some("seven"));
        assert!(read::<Map<I32, Str>, HashMap<i32, String>>(r#"{"x":"y"}"#).is_err());
        let out = write::<Map<I32, Str>, HashMap<i32, String>>(&map);
        assert_eq!(out, r#"{"7":"seven"}"#, "map keys are strings in JSON");
    }

    #[test]
    fn timestamps_and_durations() {
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        };
        assert_eq!(
            write::<Timestamp, prost_types::Timestamp>(&t),
            r#"{"seconds":1700000000,"nanos":500000000}"#
        );
        let rfc3339 = write::<TimestampRfc3339, prost_types::Timestamp>(&t);
        assert_eq!(rfc3339, "\"2023-11-14T22:13:20.500Z\"");
        assert_eq!(
            read::<Timestamp, prost_types::Timestamp>(&rfc3339).unwrap(),
            t
        );
        let from_long = r#"{"seconds":"1700000000","nanos":500000000}"#;
        assert_eq!(
            read::<Timestamp, prost_types::Timestamp>(from_long).unwrap(),
            t
        );
        assert!(read::<Timestamp, prost_types::Timestamp>("\"yesterday\"").is_err());
        let d = read::<Duration, prost_types::Duration>("\"1.5s\"").unwrap();
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        assert_eq!(
            write::<Duration, prost_types::Duration>(&d),
            r#"{"seconds":1,"nanos":500000000}"#
        );
        assert!(read::<Duration, prost_types::Duration>("\"1.5 minutes\"").is_err());
    }

    #[test]
    fn field_masks_structs_values_and_any() {
        let mask = read::<FieldMask, prost_types::FieldMask>("\"a.b, c\"").unwrap();
        assert_eq!(mask.paths, vec!["a.b", "c"]);
        assert_eq!(
            write::<FieldMask, prost_types::FieldMask>(&mask),
            r#"["a.b","c"]"#
        );
        let empty = read::<FieldMask, prost_types::FieldMask>("\"\"").unwrap();
        assert!(empty.paths.is_empty());
        let json = r#"{"n":1.0,"list":[true,null,"x"]}"#;
        let s = read::<Struct, prost_types::Struct>(json).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&write::<Struct, prost_types::Struct>(&s)).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        assert!(
            read::<Struct, prost_types::Struct>("[1]").is_err(),
            "not an object"
        );
        let any = prost_types::Any {
            type_url: "type.googleapis.com/x.Y".into(),
            value: vec![8, 1],
        };
        let text = write::<Any, prost_types::Any>(&any);
        assert_eq!(
            text,
            r#"{"typeUrl":"type.googleapis.com/x.Y","value":{"0":8,"1":1}}"#
        );
        assert_eq!(read::<Any, prost_types::Any>(&text).unwrap(), any);
        let canonical = r#"{"@type":"type.googleapis.com/x.Y","value":"CAE="}"#;
        assert_eq!(read::<Any, prost_types::Any>(canonical).unwrap(), any);
    }

    #[test]
    fn whole_payloads() {
        assert_eq!(encode(&()).unwrap(), b"{}");
        assert_eq!(decode::<()>(b"garbage, ignored").unwrap(), ());
        assert_eq!(
            decode::<String>(b"  \n").unwrap(),
            "",
            "empty is the default"
        );
        let e = decode::<i32>(b"{").unwrap_err();
        assert!(e.is(crate::codes::INVALID_ARGUMENT), "{e:?}");
        assert!(e.message.contains("cannot decode i32 from JSON"), "{e:?}");
        assert_eq!(encode(&vec![1, 2]).unwrap(), b"[1,2]");
    }
}
