#!/bin/sh
# Guest half of board/vm/selftest: prints "SELFTEST key=value" lines for the
# host to check, and leaves files in /share.
set -eu
say() { echo "SELFTEST $*"; }
vivid_args="n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0"  # one webcam input
say kernel="$(uname -r)"
# shellcheck disable=SC2086
load-vivid $vivid_args
for n in /sys/class/video4linux/*/name; do
  say name="$(basename "$(dirname "$n")"):$(cat "$n")"
done
say devs="$(echo /dev/video*)"
if command -v v4l2-ctl >/dev/null; then
  v4l2-ctl -d /dev/video0 --list-formats-ext >/share/formats.txt
  say v4l2-ctl-formats="$(grep -c "]: '" /share/formats.txt)"
  say v4l2-ctl-format="$(v4l2-ctl -d /dev/video0 --get-fmt-video | sed -n "s/.*Pixel Format *: '\(....\)'.*/\1/p")"
else
  say video0-dev="$(cat /sys/class/video4linux/video0/dev)"
fi
# vivid supports read(): one read is one frame (640x360 YUYV by default).
dd if=/dev/video0 of=/share/frame.yuyv bs=8M count=1 2>/dev/null
say frame-bytes="$(wc -c </share/frame.yuyv)"
echo "hello from $(uname -r)" >/share/guest.txt

# rmmod while a device is open, then an unplug (unbind) while it is open.
exec 3</dev/video0
if rmmod vivid 2>/tmp/err; then say rmmod-open=unloaded; else say rmmod-open="refused: $(cat /tmp/err)"; fi
if [ -d /sys/module/vivid ]; then
  unload-vivid --unbind
  [ -e /dev/video0 ] || say unbind-open=gone
  if dd bs=8M count=1 <&3 >/dev/null 2>/tmp/err; then say read-after-unbind=ok; else say read-after-unbind="$(cat /tmp/err)"; fi
  exec 3<&-
  load-vivid
  [ ! -e /dev/video0 ] || say rebind=back
fi
exec 3<&-

# Unplug and replug by unloading the module.
unload-vivid
[ -e /dev/video0 ] || say unload=gone
# shellcheck disable=SC2086
load-vivid $vivid_args
[ ! -e /dev/video0 ] || say reload=back
say finished=yes
