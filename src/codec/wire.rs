//! Primitive wire types of MQTT §1.5: integers, variable byte integers, strings, binary.
//!
//! [`Reader`] walks one frame held as `Bytes` and hands out slices of it (no copies).
//! [`FrameWriter`] writes a frame whose exact size was computed first, after a single
//! `reserve`, so encoding does no intermediate allocation and no per-field capacity checks.

use bytes::{Buf, Bytes, BytesMut};
use std::mem::MaybeUninit;

use super::error::{DecodeError, EncodeError};
use super::types::MqttStr;

/// Largest value of a variable byte integer (§1.5.5).
pub const MAX_VAR_INT: u32 = 268_435_455;

/// Number of bytes a variable byte integer takes.
#[inline]
pub fn var_int_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Size of a whole frame given its remaining length.
#[inline]
pub fn frame_len(remaining: usize) -> usize {
    1 + var_int_len(remaining) + remaining
}

/// Checks a remaining length against the protocol's ceiling.
#[inline]
pub fn check_remaining(remaining: usize) -> Result<(), EncodeError> {
    if remaining > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    Ok(())
}

/// Checks a string or binary field against the 16-bit length prefix.
#[inline]
pub fn check_field(len: usize) -> Result<(), EncodeError> {
    if len > u16::MAX as usize {
        return Err(EncodeError::FieldTooLong(len));
    }
    Ok(())
}

/// Parses a variable byte integer from the start of `bytes`.
/// `Ok(None)`: more bytes are needed. Returns the value and the number of bytes used.
#[inline]
pub fn parse_var_int(bytes: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&b) = bytes.get(i) else {
            return Ok(None);
        };
        value |= ((b & 0x7F) as u32) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after others adds nothing: the value had a shorter form
            // [MQTT-1.5.5-1].
            if b == 0 && i > 0 {
                return Err(DecodeError::MalformedRemainingLength);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

/// A cursor over one frame's body. Every read checks bounds and returns
/// [`DecodeError::Truncated`] instead of panicking.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    /// Starts reading `buf` from its first byte.
    #[inline]
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything was read.
    #[inline]
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Two-byte big-endian integer.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    /// Four-byte big-endian integer.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Variable byte integer (property lengths, subscription identifiers).
    #[inline]
    pub fn var_int(&mut self) -> Result<u32, DecodeError> {
        match parse_var_int(&self.buf[self.pos..]) {
            Ok(Some((v, n))) => {
                self.pos += n;
                Ok(v)
            }
            Ok(None) => Err(DecodeError::Truncated),
            Err(e) => Err(e),
        }
    }

    /// `n` bytes as a shared slice of the frame. The last field of a frame takes over the
    /// reader's reference instead of adding one (no reference count traffic).
    #[inline]
    pub fn slice(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        if self.pos == self.buf.len() {
            return Ok(self.rest_from(start));
        }
        Ok(self.buf.slice(start..start + n))
    }

    #[inline]
    fn rest_from(&mut self, start: usize) -> Bytes {
        let mut rest = std::mem::take(&mut self.buf);
        rest.advance(start);
        self.pos = 0;
        rest
    }

    /// Everything left, as a shared slice (the PUBLISH payload). The reader gives up its
    /// reference to the frame instead of taking a new one (no reference count traffic).
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        self.rest_from(self.pos)
    }

    /// Two-byte length followed by that many bytes.
    #[inline]
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()? as usize;
        self.slice(n)
    }

    /// A validated UTF-8 string.
    #[inline]
    pub fn string(&mut self) -> Result<MqttStr, DecodeError> {
        MqttStr::try_from_bytes(self.binary()?)
    }

    /// A validated UTF-8 string without wildcards (a PUBLISH topic, possibly empty).
    #[inline]
    pub fn topic_name(&mut self) -> Result<MqttStr, DecodeError> {
        MqttStr::try_topic_name(self.binary()?)
    }

    /// A sub-reader over the next `n` bytes (a property block).
    #[inline]
    pub fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        if n == 0 {
            // The common empty property block: no slice, no reference count.
            return Ok(Reader::new(Bytes::new()));
        }
        Ok(Reader::new(self.slice(n)?))
    }
}

/// Writes into uninitialised spare capacity that was reserved for exactly `cap` bytes.
pub struct FrameWriter<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    pos: usize,
}

impl FrameWriter<'_> {
    /// Bytes.
    #[inline]
    pub fn put_slice(&mut self, s: &[u8]) {
        let end = self.pos + s.len();
        let dst = &mut self.buf[self.pos..end];
        // SAFETY: `dst` is exactly `s.len()` bytes of writable memory (checked by the slice
        // index above); MaybeUninit<u8> has the layout of u8.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), dst.as_mut_ptr() as *mut u8, s.len());
        }
        self.pos = end;
    }

    /// One byte.
    #[inline]
    pub fn put_u8(&mut self, b: u8) {
        self.buf[self.pos].write(b);
        self.pos += 1;
    }

    /// Big-endian u16.
    #[inline]
    pub fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    /// Big-endian u32.
    #[inline]
    pub fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }

    /// Variable byte integer; the caller checked it is at most [`MAX_VAR_INT`].
    #[inline]
    pub fn put_var_int(&mut self, mut v: usize) {
        if v < 0x80 {
            self.put_u8(v as u8);
            return;
        }
        loop {
            let mut b = (v & 0x7F) as u8;
            v >>= 7;
            if v > 0 {
                b |= 0x80;
            }
            self.put_u8(b);
            if v == 0 {
                return;
            }
        }
    }

    /// Length-prefixed binary or string; the caller checked the length fits in 16 bits.
    #[inline]
    pub fn put_binary(&mut self, s: &[u8]) {
        self.put_u16(s.len() as u16);
        self.put_slice(s);
    }

    /// Fixed header: type/flags byte and remaining length.
    #[inline]
    pub fn put_header(&mut self, first: u8, remaining: usize) {
        self.put_u8(first);
        self.put_var_int(remaining);
    }
}

/// Reserves exactly `len` bytes at the end of `out`, lets `write` fill them, and commits.
/// Panics (a bug, not input) if `write` wrote a different number of bytes than `len`.
#[inline]
pub fn write_frame(out: &mut BytesMut, len: usize, write: impl FnOnce(&mut FrameWriter<'_>)) {
    out.reserve(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let mut w = FrameWriter { buf: spare, pos: 0 };
    write(&mut w);
    assert_eq!(w.pos, len, "encoded length differs from computed length");
    // SAFETY: the first `len` bytes of spare capacity were all written (asserted above).
    unsafe { out.set_len(out.len() + len) };
}

/// Encoded size of a length-prefixed string or binary field.
#[inline]
pub fn binary_len(s: &[u8]) -> usize {
    2 + s.len()
}
