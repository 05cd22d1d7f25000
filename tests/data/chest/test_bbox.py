"""ChestX-ray14's BBox_List_2017.csv, read from a file in NIH's format, and CXR14 tasks in
CheXpert terms mapped to the boxes' findings."""

from __future__ import annotations

import pytest

from jaxtl.core.errors import DataError
from jaxtl.data import registry
from jaxtl.data.chest import bbox
from jaxtl.data.regions import Box

# As NIH ships it: the bracketed header over four cells and three empty ones, trailing empty
# cells on the rows, CRLF line ends, 'Infiltrate' for Infiltration.
NIH_FILE = (
    "Image Index,Finding Label,Bbox [x,y,w,h],,,\r\n"
    "00013118_008.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,"
    "79.1864406779661,,,\r\n"
    "00014716_007.png,Atelectasis,686.101694915254,131.543713674398,185.491525423729,"
    "313.491525423729,,,\r\n"
    "00014716_007.png,Infiltrate,350.0,200.0,100.0,50.0,,,\r\n"
    "00029817_009.png,Nodule,694.237288135593,390.05217296489,68.8813559322034,"
    "59.1864406779661\r\n"
    "\r\n")


def test_reads_nih_format(tmp_path):
    (tmp_path / bbox.BBOX_FILE).write_bytes(NIH_FILE.encode())
    regions = bbox.regions(tmp_path)
    assert regions.findings == {"Atelectasis", "Infiltration", "Nodule"}
    assert regions.of("00013118_008.png") == (
        Box(225.084745762712, 547.019216763771, 86.7796610169491, 79.1864406779661),)
    assert regions.of("00014716_007.png", ("Infiltration",)) == (Box(350.0, 200.0, 100.0, 50.0),)
    assert len(regions.of("00014716_007.png")) == 2
    assert regions.of("00000001_000.png") == ()
    assert bbox.regions(tmp_path / "missing") is None


def test_malformed_file_is_a_data_error(tmp_path):
    path = tmp_path / bbox.BBOX_FILE
    path.write_text("image,finding\n")
    with pytest.raises(DataError, match="Image Index"):
        bbox.read_bbox_list(path)
    path.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Mass,1,2,three,4\n")
    with pytest.raises(DataError, match="line 2"):
        bbox.read_bbox_list(path)


def test_task_labels_map_to_the_box_findings():
    cxr14 = registry.get("cxr14").region_findings
    assert set(cxr14("Lung Opacity")) == {"Atelectasis", "Consolidation", "Edema",
                                          "Infiltration", "Mass", "Nodule", "Pneumonia"}
    assert cxr14("Pleural Effusion") == ("Effusion",)
    assert cxr14("Nodule") == ("Nodule",)
    assert registry.get("chexpert").region_findings("Lung Opacity") == ("Lung Opacity",)
