//! Any bytes from a client: framing, startup decoding and the decoders of
//! the messages policy reads (Parse, Bind, SASL, password, errors) return a
//! value, "incomplete" or an error, and never panic or loop.
#![no_main]

use bytes::BytesMut;
use clsf_wire::{frame, messages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(packet)) = frame::split_startup(&mut buf) {
        let _ = messages::decode_startup(&packet);
    }
    let mut buf = BytesMut::from(data);
    let mut frames = 0;
    while let Ok(Some(f)) = frame::split_frame(&mut buf, frame::MAX_FRAME) {
        frames += 1;
        assert!(frames <= data.len(), "split_frame made no progress");
        let body = f.body();
        let _ = messages::decode_cstring_body(body);
        let _ = messages::error_fields(body);
        let _ = messages::decode_parse(body);
        let _ = messages::decode_bind_names(body);
        let _ = messages::decode_sasl_initial(body);
    }
});
