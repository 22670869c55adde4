#!/usr/bin/env bash
# scripts/deps.sh [--list] [GROUP...] - installs the Debian packages of the
# named groups (default: build), only those missing.
#   build  what cbctiq needs to build and run (`make demo`)
#   test   the test suite's own needs: cmocka, the reference implementations
#          the tests compare with, fuzzing and the sanitizer trees (`make check`)
#   bench  the peers the benchmarks time cbctiq against (`make bench`)
# --list prints the groups' packages, one a line, and installs nothing.
# Idempotent and quick when everything is present; runs `apt-get update` only
# when something must be installed; uses sudo when not root. When it cannot
# install, it prints the exact command to run and exits non-zero.
# README.md ("Dependencies, and why") says why each package is here; the test
# deps_groups checks that every Python module the tests and benchmarks import
# comes from their group and that the README names every package.
set -euo pipefail

pkgs_build=(
  cmake build-essential pkg-config    # the build (gcc, libgomp for OpenMP)
  python3                             # lists the public API: libcbctiq.so's exports
  libopenblas-dev                     # SGEMM under the convolutions
  libcjson-dev                        # model.json, study.json, stats.json
  libnifti2-dev zlib1g-dev            # NIfTI-1/2 (.nii, .nii.gz)
  libdcmtk-dev                        # DICOM series and RTSTRUCT in; Parametric Maps and Secondary Captures out
  libopenjp2-7-dev                    # JPEG 2000 pixel data in DICOM (OpenJPEG)
  libgsl-dev                          # distributions for p-values
  libcairo2-dev libpng-dev fonts-dejavu-core  # figures and PNG overlays
  libopenmpi-dev openmpi-bin          # MPI: mpirun shares the work over ranks (docs/cluster.md)
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev  # ONNX models: protobuf-c code from ONNX's own onnx.proto
)
pkgs_test=(
  libcmocka-dev libfontconfig-dev     # C unit tests (the figure tests free fontconfig's caches)
  python3 python3-numpy python3-scipy python3-nibabel python3-pydicom python3-torch  # oracle tests
  python3-torchvision python3-onnx    # ResNet/DenseNet peers, torch.onnx.export and the ONNX checker
  python3-matplotlib                  # oracle for the viridis/inferno colour-map tables
  python3-pip python3-setuptools python3-pytest python3-pandas  # the Python package: install, tests; wide sheets
  dcmtk dcm2niix                      # DICOM oracle: dcmcrle/dcmcjpeg encode, dcm2niix reads
  dicom3tools                         # dciodvfy checks the DICOM maps against the standard's IODs
  libgdcm-tools python3-pil           # JPEG 2000 oracle: gdcmconv encodes, pydicom decodes through Pillow
  clang-14 libfuzzer-14-dev libclang-rt-14-dev  # fuzz targets, ThreadSanitizer tree
  libomp-14-dev                       # LLVM OpenMP + Archer: ThreadSanitizer tree
  chromium                            # renders the HTML report in its test
  python3-websocket                   # the DevTools client that drives it (report viewer test)
)
pkgs_bench=(
  python3 python3-numpy python3-torch  # PyTorch peer of the layers, iqnet and Grad-CAM
  python3-torchvision                 # PyTorch peer of the ResNet presets
  python3-scipy                       # SciPy peer of the statistics
  python3-pydicom python3-nibabel dcm2niix  # DICOM peer: writes the series, checks the grids
)

list=0
groups=()
for arg in "$@"; do
  case "$arg" in
    --list) list=1 ;;
    build|test|bench) groups+=("$arg") ;;
    *) echo "usage: scripts/deps.sh [--list] [build] [test] [bench]; unknown '$arg'" >&2; exit 2 ;;
  esac
done
[ ${#groups[@]} -eq 0 ] && groups=(build)

packages=()
for g in "${groups[@]}"; do
  declare -n group="pkgs_$g"
  for p in "${group[@]}"; do
    [[ " ${packages[*]} " == *" $p "* ]] || packages+=("$p")
  done
  unset -n group
done
if [ $list -eq 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

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
  echo "cbctiq ($(IFS=+; echo "${groups[*]}")) needs these Debian packages; please run:" >&2
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
