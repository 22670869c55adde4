# embed_text.cmake - writes a C header that holds a text file as a string
# (the report's viewer script), so the program needs no file beside it:
#
#   cmake -DINPUT=in.js -DOUTPUT=out.h -DNAME=VIEWER_JS -P cmake/embed_text.cmake
#
# The string is written as bytes (no escaping questions, no limit on the
# length of a string literal) and ends with a NUL.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
get_filename_component(source "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp"
     "/* ${NAME}: ${source}, written at build time by cmake/embed_text.cmake. */\n"
     "static const char ${NAME}[] = {\n${bytes}0x00};\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
