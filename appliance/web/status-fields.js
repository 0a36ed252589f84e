// The fields of the device's /api/status that the dashboard reads, nested
// ones as `a.b` (an array, such as `publish`, by its own name only). A browser test (status-fields.test.mjs) checks that a real
// `mado run` serves every one, and that the dashboard reads no other, so a
// rename on either side fails a test. Pure data: node imports it too.

/** Every /api/status field the dashboard reads. */
export const STATUS_FIELDS = [
  'source',
  'fps',
  'viewers',
  'max_viewers',
  'frames_captured',
  'frames_encoded',
  'frames_dropped',
  'bitrate_kbps',
  'sent_kbps',
  'encoder.backend',
  'encoder.width',
  'encoder.height',
  'encoder.target_kbps',
  'latency.capture_to_hub.median_ms',
  'latency.capture_to_hub.p95_ms',
  'latency.capture_to_socket.median_ms',
  'latency.capture_to_socket.p95_ms',
  'camera',
  'uptime_s',
  'server_time_us',
  'inference_ms',
  'detection_off',
  'frames_bad',
  'publish',
  'mqtt.state',
  'mqtt.broker',
  'mqtt.since_s',
  'mqtt.last_error',
  'gate',
  'motion',
  'detections_run',
];
