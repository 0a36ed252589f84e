// Encoded Transform worker of the Mado dashboard (an ES module worker).
//
// Every received encoded video frame passes through unchanged; on the way its
// Mado metadata OBU is decoded (meta.js) and posted to the page, keyed by the
// frame's RTP timestamp, which is what the page later finds in
// requestVideoFrameCallback's metadata.
//
// Two ways in:
//  - RTCRtpScriptTransform: the browser fires `rtctransform` here.
//  - createEncodedStreams() fallback: the page transfers {readable, writable}
//    with a message {type: 'streams'}.
// Messages to the page: {type: 'frame', session, rtpTimestamp, meta, error,
// counts: {frames, withMeta, errors}}.

import { inspectEncodedFrame } from './meta.js';

const counts = { frames: 0, withMeta: 0, errors: 0 };

function inspect(frame, session) {
  self.postMessage({ type: 'frame', session, ...inspectEncodedFrame(frame, counts), counts: { ...counts } });
}

function pipe(readable, writable, session) {
  const transform = new TransformStream({
    transform(frame, controller) {
      try {
        inspect(frame, session);
      } finally {
        // Always pass the frame on, untouched.
        controller.enqueue(frame);
      }
    },
  });
  readable
    .pipeThrough(transform)
    .pipeTo(writable)
    .catch((e) => self.postMessage({ type: 'pipe-closed', session, reason: String(e) }));
}

self.onrtctransform = (event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options ? t.options.session : undefined);
};

self.onmessage = (event) => {
  const msg = event.data;
  if (msg && msg.type === 'streams') pipe(msg.readable, msg.writable, msg.session);
};

self.postMessage({ type: 'ready' });
