//! Any bytes from a client: framing and startup decoding return a frame,
//! "incomplete" or an error, and never panic.
#![no_main]

use bytes::BytesMut;
use clsf_runtime::wire::frame::{MAX_FRAME, split_frame, split_startup};
use clsf_runtime::wire::messages::{decode_cstring_body, decode_startup, error_fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(packet)) = split_startup(&mut buf) {
        let _ = decode_startup(&packet);
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut buf, MAX_FRAME) {
        let _ = decode_cstring_body(frame.body());
        let _ = error_fields(frame.body());
    }
});
