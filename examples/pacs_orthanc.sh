#!/usr/bin/env bash
# Census and pull from a live PACS, end to end, against a local Orthanc (Debian: apt-get install orthanc orthanc-dicomweb):
# start Orthanc, upload a synthetic export, census it, pull a de-identified training set, pretrain on it.
#   bash examples/pacs_orthanc.sh [WORK_DIR]
set -euo pipefail
work=${1:-$(mktemp -d)}
mkdir -p "$work/orthanc-db"
http_port=${HTTP_PORT:-18042}
dicom_port=${DICOM_PORT:-14242}
cat > "$work/orthanc.json" <<JSON
{ "Name": "modan-example", "StorageDirectory": "$work/orthanc-db", "IndexDirectory": "$work/orthanc-db",
  "HttpPort": $http_port, "DicomPort": $dicom_port, "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
  "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true, "DicomCheckCalledAet": true }
JSON
Orthanc "$work/orthanc.json" > "$work/orthanc.log" 2>&1 &
orthanc_pid=$!
trap 'kill $orthanc_pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$http_port/system" > /dev/null; do sleep 0.2; done

# 1. a synthetic PACS export, uploaded through Orthanc's REST API (non-DICOM files are refused: fine)
modan-dicom synth "$work/export" --patients 24 --image-size 64
find "$work/export" -type f -print0 | xargs -0 -P4 -I{} curl -s -o /dev/null -X POST --data-binary @{} \
  "http://127.0.0.1:$http_port/instances"

# 2. the census, over DICOMweb (the same works with dimse://ORTHANC@127.0.0.1:$dicom_port)
export MODAN_SALT=${MODAN_SALT:-example-salt}
modan-dicom index "http://127.0.0.1:$http_port/dicom-web" -o "$work/census.parquet"

# 3. a de-identified pull of the series the census labels (3 middle instances each), over DIMSE this time
modan-dicom pull "dimse://ORTHANC@127.0.0.1:$dicom_port" --out "$work/pulled" --census "$work/census.parquet" \
  --per-series 3 --workers 4

# 4. pretraining on what was pulled (a few epochs: a smoke run, not a model)
modan-dicom pretrain --index "$work/pulled/index.parquet" --out "$work/runs/mulsupcon" \
  --epochs 3 --batch-size 32 --image-size 64 --warmup-epochs 1 --device cpu
echo "everything is in $work"
