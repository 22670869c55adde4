#!/usr/bin/env bash
# Installs the Debian packages cbctiq needs, only those missing.
# Idempotent and quick when everything is present; runs `apt-get update` only
# when something must be installed; uses sudo when not root. When it cannot
# install, it prints the exact command to run and exits non-zero.
set -euo pipefail

packages=(
  cmake build-essential pkg-config    # build
  libopenblas-dev                     # SGEMM under the convolutions
  libcjson-dev                        # model.json, study.json, stats.json
  libnifti2-dev zlib1g-dev            # NIfTI-1/2 (.nii, .nii.gz)
  libdcmtk-dev dcmtk                  # DICOM series and RTSTRUCT
  libgsl-dev                          # distributions for p-values
  libcairo2-dev libpng-dev fonts-dejavu-core  # figures and PNG overlays
  libcmocka-dev                       # C unit tests
  python3-numpy python3-scipy python3-nibabel python3-pydicom python3-torch  # oracle tests, benchmark peers
  dcm2niix                            # benchmark peer for DICOM reading
  clang-14 libfuzzer-14-dev libclang-rt-14-dev  # fuzz targets
  libomp-14-dev                       # LLVM OpenMP + Archer: ThreadSanitizer tree
  chromium                            # renders the HTML report in its test
  python3-matplotlib                  # oracle for the viridis/inferno colour-map tables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"
else
  echo "cbctiq needs these Debian packages; please run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing: ${missing[*]}"
if ! { $sudo apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; }; then
  echo "Could not install the packages; run by hand:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
