/* Compiles with attrib's include path: attrib may use nn. */
#include "nn/layer.h"
