//! `SO_RCVLOWAT`: how many bytes a TCP socket must hold before it reports itself readable.
//!
//! A connection that knows the next reply needs at least N more bytes (the rest of a large body) asks to be
//! woken once they are there, instead of once per packet: on a download, a wake-up per 64 KiB became one per
//! the body's remainder (capped), and the wake-ups the server's CPU paid for went with them. Reads stay
//! non-blocking and return what is there; only readiness waits for the mark (or a close, an error, or a receive
//! window nearly full, whichever comes first).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// Sets `SO_RCVLOWAT` on `socket` to `bytes` (at least 1; the kernel caps it at half its largest receive buffer).
#[cfg(target_os = "linux")]
pub(crate) fn set(socket: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes.max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `socket` is an open descriptor borrowed for the call, and the option value is a live `c_int` whose
    // size is the length passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Elsewhere the mark is left alone (a socket stays readable from its first byte).
#[cfg(not(target_os = "linux"))]
pub(crate) fn set(_socket: &impl AsRawFd, _bytes: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The mark `socket` has now (tests check what a connection set).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn get(socket: &impl AsRawFd) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `socket` is an open descriptor borrowed for the call; `value` and `len` are live locals the kernel
    // writes at most `len` bytes to.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_mut(&mut value).cast::<libc::c_void>(),
            &mut len,
        )
    };
    match rc {
        0 => Ok(usize::try_from(value).unwrap_or(0)),
        _ => Err(io::Error::last_os_error()),
    }
}
