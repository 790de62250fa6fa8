//! A client identifier owned by its session in one pointer: every session of a fleet holds
//! one for its whole life, and a `Box<str>` spends 16 bytes of the session on it (pointer and
//! length). Here the length sits in the allocation, in front of the bytes, so the session
//! pays 8 and the allocation 2 more (the same size class for the ids fleets use).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;

/// Bytes of the length prefix: an MQTT string is at most 65,535 bytes [MQTT-1.5.4-1].
const LEN_BYTES: usize = 2;

/// An owned, immutable UTF-8 client identifier of at most 65,535 bytes, one pointer wide.
pub struct ClientId {
    /// Start of an allocation of `LEN_BYTES + len` bytes (alignment 1): the length, little
    /// endian, then the UTF-8 bytes.
    ptr: NonNull<u8>,
}

// SAFETY: `ClientId` owns its allocation exclusively and never mutates it after `new`, like
// a `Box<str>`.
unsafe impl Send for ClientId {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for ClientId {}

impl ClientId {
    /// Copies `id`. Panics if it is longer than an MQTT string can be (the codec never
    /// decodes one: the length field is 16 bits).
    pub fn new(id: &str) -> ClientId {
        let len = u16::try_from(id.len()).expect("a client id is an MQTT string");
        let layout = Self::layout(len as usize);
        // SAFETY: the layout has a non-zero size (the prefix).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `raw` points to `LEN_BYTES + id.len()` writable bytes, which do not
        // overlap `id`.
        unsafe {
            raw.copy_from_nonoverlapping(len.to_le_bytes().as_ptr(), LEN_BYTES);
            raw.add(LEN_BYTES)
                .copy_from_nonoverlapping(id.as_ptr(), id.len());
        }
        ClientId { ptr }
    }

    fn layout(len: usize) -> Layout {
        // Cannot fail: at most 65,537 bytes with alignment 1.
        Layout::from_size_align(LEN_BYTES + len, 1).expect("small layout")
    }

    fn len(&self) -> usize {
        let mut prefix = [0u8; LEN_BYTES];
        // SAFETY: the allocation starts with `LEN_BYTES` initialised bytes.
        unsafe {
            prefix
                .as_mut_ptr()
                .copy_from_nonoverlapping(self.ptr.as_ptr(), LEN_BYTES)
        };
        u16::from_le_bytes(prefix) as usize
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        // SAFETY: after the prefix come `len` bytes copied from a `&str` in `new`, never
        // changed since, and alive as long as `self`.
        unsafe {
            let bytes = std::slice::from_raw_parts(self.ptr.as_ptr().add(LEN_BYTES), self.len());
            std::str::from_utf8_unchecked(bytes)
        }
    }
}

impl Drop for ClientId {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout (the length never changes).
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len())) }
    }
}

impl Deref for ClientId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Clone for ClientId {
    fn clone(&self) -> ClientId {
        ClientId::new(self.as_str())
    }
}

impl PartialEq for ClientId {
    fn eq(&self, other: &ClientId) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ClientId {}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_any_client_id_in_one_pointer() {
        assert_eq!(std::mem::size_of::<ClientId>(), 8);
        assert_eq!(std::mem::size_of::<Option<ClientId>>(), 8);
        let longest = "x".repeat(u16::MAX as usize);
        for id in ["", "a", "dev-000123", "ümlaut-∑-🚀", longest.as_str()] {
            let c = ClientId::new(id);
            assert_eq!(&*c, id);
            assert_eq!(c.clone(), c);
            assert_eq!(format!("{c:?}"), format!("{id:?}"));
        }
        assert_ne!(ClientId::new("a"), ClientId::new("b"));
    }

    #[test]
    #[should_panic(expected = "a client id is an MQTT string")]
    fn refuses_what_no_mqtt_string_can_hold() {
        ClientId::new(&"x".repeat(u16::MAX as usize + 1));
    }
}
