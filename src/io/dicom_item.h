/* dicom_item.h - reading values out of a DCMTK item, shared by the two C++
 * files of the DICOM adapter (dicom_adapter.cpp reads series,
 * dicom_map_writer.cpp copies the source's modules). C++ only, private to io. */
#ifndef CBQ_IO_DICOM_ITEM_H
#define CBQ_IO_DICOM_ITEM_H

#include <cmath>
#include <string>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

namespace cbq_dicom {

/* The element's whole value as text ("a\b" for several), "" when absent. */
inline std::string get_str(DcmItem *item, const DcmTagKey &tag)
{
    OFString v;
    if (item->findAndGetOFStringArray(tag, v).good())
        return std::string(v.c_str());
    return std::string();
}

/* The first n values as finite doubles; false when any is missing or not finite. */
inline bool get_doubles(DcmItem *item, const DcmTagKey &tag, double *out, int n)
{
    for (int i = 0; i < n; i++) {
        Float64 v;
        if (item->findAndGetFloat64(tag, v, (unsigned long)i).bad() || !std::isfinite(v))
            return false;
        out[i] = v;
    }
    return true;
}

} // namespace cbq_dicom

#endif
