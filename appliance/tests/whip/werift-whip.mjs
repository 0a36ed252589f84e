// A WHIP endpoint on werift, a WebRTC stack independent of str0m: it takes
// mado's offer, receives the AV1 stream, rebuilds every frame from its RTP
// packets with werift's own AV1 depacketizer and reads each frame's metadata
// with the dashboard's decoder (appliance/web/meta.js). Halfway it sends a
// PLI and notes how soon a keyframe follows.
//
// Usage: node werift-whip.mjs FRAMES TOKEN [ADDRESS]
// Listens on ADDRESS (default 127.0.0.1; ICE then uses that address too).
// Prints `listening PORT`, then `result JSON` once FRAMES frames have been
// checked (or after 30 s), then `deleted PATH` when the session is deleted.
// The result names the candidate types of the first offer (`offerCandidates`).

import http from 'node:http';
import {
  AV1RtpPayload,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  useNACK,
  usePLI,
  useTWCC,
  useTransportWideCC,
} from 'werift';
import { findInTemporalUnit } from '../../web/meta.js';

const wanted = Number(process.argv[2] ?? 90);
const token = process.argv[3] ?? '';
const address = process.argv[4] ?? '127.0.0.1';
const OBU_SEQUENCE_HEADER = 1;

const result = {
  frames: 0,
  withMeta: 0,
  metaErrors: [],
  seqGaps: 0,
  timestampMismatches: 0,
  incomplete: 0,
  keyframes: 0,
  sequenceHeaders: 0,
  pliSentAt: null,
  keyframeAfterPliMs: null,
  firstSeq: null,
  lastSeq: null,
  posts: 0,
  offerCandidates: null,
};
let reported = false;

function report() {
  if (reported) return;
  reported = true;
  console.log(`result ${JSON.stringify(result)}`);
}
setTimeout(report, 30_000).unref();

/** The OBU types of a temporal unit whose OBUs all carry sizes. */
function obuTypes(frame) {
  const types = [];
  let pos = 0;
  while (pos < frame.length) {
    const header = frame[pos];
    const ext = (header >> 2) & 1;
    let at = pos + 1 + ext;
    let size = 0;
    for (let shift = 0; shift < 56; shift += 7) {
      const byte = frame[at++];
      size += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) break;
    }
    types.push((header >> 3) & 0xf);
    pos = at + size;
  }
  return types;
}

function checkFrame(packets, receiver, ssrc) {
  packets.sort((a, b) => a.header.sequenceNumber - b.header.sequenceNumber);
  for (let i = 1; i < packets.length; i++) {
    if (((packets[i - 1].header.sequenceNumber + 1) & 0xffff) !== packets[i].header.sequenceNumber) {
      result.incomplete++;
      return;
    }
  }
  const payloads = packets.map((p) => AV1RtpPayload.deSerialize(p.payload));
  const frame = AV1RtpPayload.getFrame(payloads);
  result.frames++;
  if (obuTypes(frame).includes(OBU_SEQUENCE_HEADER)) result.sequenceHeaders++;
  // N: the first packet of a new coded video sequence, i.e. a keyframe.
  if (payloads[0].nBit_RtpStartsNewCodedVideoSequence) {
    result.keyframes++;
    if (result.pliSentAt !== null && result.keyframeAfterPliMs === null) {
      result.keyframeAfterPliMs = Date.now() - result.pliSentAt;
    }
  }
  let meta = null;
  try {
    meta = findInTemporalUnit(frame);
  } catch (e) {
    result.metaErrors.push(String(e.message ?? e));
  }
  if (meta) {
    result.withMeta++;
    const seq = Number(meta.seq);
    if (result.lastSeq !== null && seq !== result.lastSeq + 1) result.seqGaps++;
    result.firstSeq ??= seq;
    result.lastSeq = seq;
    // The frame's own metadata: its capture time is the RTP timestamp.
    const expected = Number((BigInt(meta.capture_us) * 9n) / 100n) % 2 ** 32;
    if (expected !== packets[0].header.timestamp) result.timestampMismatches++;
  }
  if (result.frames === Math.floor(wanted / 2) && result.pliSentAt === null) {
    result.pliSentAt = Date.now();
    receiver.sendRtcpPLI(ssrc).catch(() => {});
  }
  if (result.frames >= wanted) report();
}

async function answer(offer) {
  const pc = new RTCPeerConnection({
    iceAdditionalHostAddresses: address === '127.0.0.1' ? ['127.0.0.1'] : [],
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/AV1',
          clockRate: 90000,
          rtcpFeedback: [useNACK(), usePLI(), useTWCC()],
        }),
      ],
    },
    headerExtensions: { video: [useTransportWideCC()] },
  });
  pc.onTransceiverAdded.subscribe((transceiver) => {
    transceiver.onTrack.subscribe((track) => {
      let current = [];
      track.onReceiveRtp.subscribe((rtp) => {
        if (rtp.payload.length === 0) return; // padding
        if (current.length && current[0].header.timestamp !== rtp.header.timestamp) {
          result.incomplete++; // a frame whose last packet never came
          current = [];
        }
        current.push(rtp);
        if (rtp.header.marker) {
          checkFrame(current, transceiver.receiver, rtp.header.ssrc);
          current = [];
        }
      });
    });
  });
  result.offerCandidates ??= [...new Set([...offer.matchAll(/ typ (\w+)/g)].map((m) => m[1]))];
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) =>
      pc.iceGatheringStateChange.subscribe((state) => state === 'complete' && resolve()),
    );
  }
  return pc.localDescription.sdp;
}

const sessions = new Map();
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    if (req.method === 'POST' && req.url === '/whip') {
      if (req.headers['content-type'] !== 'application/sdp') {
        res.writeHead(415).end();
        return;
      }
      result.posts++;
      try {
        const sdp = await answer(Buffer.concat(chunks).toString());
        const path = `/whip/session/${result.posts}`;
        sessions.set(path, true);
        res.writeHead(201, { 'content-type': 'application/sdp', location: path }).end(sdp);
      } catch (e) {
        res.writeHead(400).end(String(e));
      }
    } else if (req.method === 'DELETE' && sessions.has(req.url)) {
      sessions.delete(req.url);
      res.writeHead(200).end();
      console.log(`deleted ${req.url}`);
    } else {
      res.writeHead(404).end();
    }
  });
});
server.listen(0, address, () => console.log(`listening ${server.address().port}`));
