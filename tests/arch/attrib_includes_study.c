/* Must not compile with attrib's include path: study is above attrib. */
#include "study/pipeline.h"
