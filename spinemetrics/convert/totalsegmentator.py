"""TotalSegmentator multi-label outputs: task ``total`` (CT, v2) and ``total_mr`` (MR).

Source: wasserth/TotalSegmentator ``totalsegmentator/map_to_binary.py``, ``class_map["total"]``
and ``class_map["total_mr"]`` (read through the code index at commit
0275d3046117a9615a9876e6e4eefd5156843f1c; identical at 0e65a448, the commit of the sample files
in /work/shared/data/totalseg_*). The v1 ``total_v1`` ids differ and are not accepted.

What maps where:

* ``vertebrae_C1`` … ``vertebrae_L5`` (CT): whole vertebrae with their level; ``vertebrae``
  (MR): all vertebrae in one class, no level. Split into body / posterior elements.
* ``sacrum`` and ``vertebrae_S1`` → ``sacrum`` (level S1 = 26 in CT).
* ``intervertebral_discs`` (MR) → ``intervertebral_disc``; the CT ``total`` task has no discs.
* ``spinal_cord`` → ``spinal_cord``. In CT the cord cannot be told from CSF, and the class
  covers the dural sac contents; canal measures use thecal_sac ∪ spinal_cord, so either way
  the union is right.
* ``autochthon_left/right`` (erector spinae + multifidus) and ``iliopsoas_left/right`` →
  ``paraspinal_muscle`` (contract §2 includes psoas).
* ``aorta``, ``inferior_vena_cava``, ``iliac_artery_*``, ``iliac_vena_*`` → ``vessel``.
* Everything else (organs, ribs, limbs, …) is outside the 11 structures and left out.
"""

from __future__ import annotations

from spinemetrics.convert._common import VERTEBRA, ConvertResult, Target, convert_flat
from spinemetrics.image import Image
from spinemetrics.labels import Structure as S

__all__ = ["CT_NAMES", "MR_NAMES", "CT_TABLE", "MR_TABLE", "convert_ct", "convert_mr"]

# class_map["total"] (v2), ids 1–117, in order.
CT_NAMES: dict[int, str] = dict(enumerate((
    "spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right "
    "adrenal_gland_left lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right "
    "lung_middle_lobe_right lung_lower_lobe_right esophagus trachea thyroid_gland small_bowel "
    "duodenum colon urinary_bladder prostate kidney_cyst_left kidney_cyst_right sacrum "
    "vertebrae_S1 vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1 "
    "vertebrae_T12 vertebrae_T11 vertebrae_T10 vertebrae_T9 vertebrae_T8 vertebrae_T7 "
    "vertebrae_T6 vertebrae_T5 vertebrae_T4 vertebrae_T3 vertebrae_T2 vertebrae_T1 "
    "vertebrae_C7 vertebrae_C6 vertebrae_C5 vertebrae_C4 vertebrae_C3 vertebrae_C2 "
    "vertebrae_C1 heart aorta pulmonary_vein brachiocephalic_trunk subclavian_artery_right "
    "subclavian_artery_left common_carotid_artery_right common_carotid_artery_left "
    "brachiocephalic_vein_left brachiocephalic_vein_right atrial_appendage_left "
    "superior_vena_cava inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left "
    "iliac_artery_right iliac_vena_left iliac_vena_right humerus_left humerus_right "
    "scapula_left scapula_right clavicula_left clavicula_right femur_left femur_right "
    "hip_left hip_right spinal_cord gluteus_maximus_left gluteus_maximus_right "
    "gluteus_medius_left gluteus_medius_right gluteus_minimus_left gluteus_minimus_right "
    "autochthon_left autochthon_right iliopsoas_left iliopsoas_right brain skull "
    + " ".join(f"rib_left_{n}" for n in range(1, 13)) + " "
    + " ".join(f"rib_right_{n}" for n in range(1, 13)) + " sternum costal_cartilages"
).split(), start=1))

# class_map["total_mr"], ids 1–50, in order.
MR_NAMES: dict[int, str] = dict(enumerate((
    "spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right "
    "adrenal_gland_left lung_left lung_right esophagus small_bowel duodenum colon "
    "urinary_bladder prostate sacrum vertebrae intervertebral_discs spinal_cord heart aorta "
    "inferior_vena_cava portal_vein_and_splenic_vein iliac_artery_left iliac_artery_right "
    "iliac_vena_left iliac_vena_right humerus_left humerus_right scapula_left scapula_right "
    "clavicula_left clavicula_right femur_left femur_right hip_left hip_right "
    "gluteus_maximus_left gluteus_maximus_right gluteus_medius_left gluteus_medius_right "
    "gluteus_minimus_left gluteus_minimus_right autochthon_left autochthon_right "
    "iliopsoas_left iliopsoas_right brain"
).split(), start=1))

_VESSELS = {"aorta", "inferior_vena_cava", "iliac_artery_left", "iliac_artery_right",
            "iliac_vena_left", "iliac_vena_right"}
_MUSCLES = {"autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right"}


def _vertebra_level(name: str) -> int | None:
    part = name.removeprefix("vertebrae_")
    region, num = part[0], int(part[1:])
    return {"C": num, "T": 7 + num, "L": 19 + num, "S": 26}[region]


def _target(name: str) -> Target:
    if name in ("sacrum", "vertebrae_S1"):
        return Target(S.sacrum, 26 if name == "vertebrae_S1" or name == "sacrum" else None)
    if name.startswith("vertebrae_"):
        return Target(VERTEBRA, _vertebra_level(name))
    if name == "vertebrae":
        return Target(VERTEBRA, None)
    if name == "intervertebral_discs":
        return Target(S.intervertebral_disc, None)
    if name == "spinal_cord":
        return Target(S.spinal_cord, None)
    if name in _VESSELS:
        return Target(S.vessel, None)
    if name in _MUSCLES:
        return Target(S.paraspinal_muscle, None)
    return Target(None, None)


CT_TABLE: dict[int, Target] = {i: _target(n) for i, n in CT_NAMES.items()}
MR_TABLE: dict[int, Target] = {i: _target(n) for i, n in MR_NAMES.items()}
# total_mr's sacrum has no level split and no S1 meaning beyond "sacrum": keep it as S1 = 26.
assert len(CT_NAMES) == 117 and len(MR_NAMES) == 50, "class maps out of sync with the source"


def convert_ct(img: Image, instance: Image | None = None) -> ConvertResult:
    result = convert_flat(img, CT_TABLE, "totalsegmentator_ct", CT_NAMES, renumber=False)
    if result.levels is not None:
        result.warnings.append(
            "TotalSegmentator CT has no disc labels: disc levels must be derived from the "
            "vertebrae"
        )
    return result


def convert_mr(img: Image, instance: Image | None = None) -> ConvertResult:
    result = convert_flat(img, MR_TABLE, "totalsegmentator_mr", MR_NAMES, renumber=False)
    result.warnings.append(
        "TotalSegmentator total_mr labels all vertebrae as one class and all discs as one: no "
        "per-level labels; derive them from the semantic map"
    )
    return result
