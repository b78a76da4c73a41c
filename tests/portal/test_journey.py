"""The seed's journeys in a real (headless) Chromium: find a procedure, choose the agency,
register, sign in, file with uploads, review, submit (a double submit files once), print
the receipt (its QR code decodes to the lookup URL), look it up, follow it; at the
one-stop desk the officer receives it, asks for a supplement, the citizen answers, the
officer records and returns the result, the citizen downloads it; the English switch.

axe-core runs on every page visited: no WCAG 2.1 A/AA violation. Screenshots of each step
go to ``.run/browser/``."""

from __future__ import annotations

import base64
import io
import threading

import pytest
import requests

from tests.portal.conftest import SHOTS, axe_violations, code_after, new_citizen, new_officer, sms_count

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PROCEDURE = "1.001193"
AGENCY = "W00004-UBND"
PDF = b"%PDF-1.4\n% birth certificate\n%%EOF\n"


class Journey:
    """Steps through pages: each one is screenshotted and checked by axe."""

    def __init__(self, driver, portal_url: str, gateway_url: str, shots):
        self.d, self.url, self.gateway_url, self.shots = driver, portal_url, gateway_url, shots
        self.step = 0
        self.checked: list[str] = []

    def by(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, css)

    def link(self, text: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.PARTIAL_LINK_TEXT, text)

    def open(self, path: str, name: str):
        self.d.get(self.url + path)
        self.check(name)

    def check(self, name: str) -> None:
        self.step += 1
        self.d.save_screenshot(str(self.shots / f"{self.step:02d}-{name}.png"))
        violations = axe_violations(self.d)
        assert not violations, f"{name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in violations)
        self.checked.append(name)

    def fill(self, css: str, value: str) -> None:
        el = self.by(css)
        el.clear()
        el.send_keys(value)

    def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.by(css)).select_by_value(value)

    def click(self, css: str | None = None, element=None) -> None:
        """Click and wait for the next page (a click can return before the navigation ends)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def gone(_driver) -> bool:
            try:
                old.is_enabled()
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:  # Chromium's way of saying the same, now and then
                if "does not belong to the document" in str(exc):
                    return True
                raise
            return False

        old = self.by("html")
        (element if element is not None else self.by(css)).click()
        WebDriverWait(self.d, 30).until(gone)
        WebDriverWait(self.d, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def submit(self, css: str, name: str) -> None:
        self.click(css)
        self.check(name)

    def h1(self) -> str:
        return self.by("h1").text


def _files(tmp_path) -> list:
    paths = []
    for i in (1, 2, 3):
        p = tmp_path / f"giay-to-{i}.pdf"
        p.write_bytes(PDF)
        paths.append(p)
    return paths


def _sign_in(j: Journey, person: dict) -> None:
    before = sms_count(j.gateway_url, person["phone"])
    j.fill("#f-id_number", person["cccd"])
    j.fill("#f-password", person["password"])
    j.submit("form[action='/dang-nhap'] button[type=submit]", "sign-in-code")
    j.fill("#f-otp", code_after(j.gateway_url, person["phone"], before))
    j.click("main form button[type=submit]")


def _desk_sign_in(j: Journey, officer: dict, check: bool) -> None:
    before = sms_count(j.gateway_url, officer["phone"])
    j.d.delete_all_cookies()
    if check:
        j.open("/mot-cua/dang-nhap", "desk-sign-in")
    else:
        j.d.get(j.url + "/mot-cua/dang-nhap")
    j.fill("#f-username", officer["username"])
    j.fill("#f-password", officer["password"])
    j.click("main form button[type=submit]")
    if check:
        j.check("desk-code")
    j.fill("#f-otp", code_after(j.gateway_url, officer["phone"], before))
    j.click("main form button[type=submit]")
    assert "/mot-cua/" in j.d.current_url and "dang-nhap" not in j.d.current_url, j.by("main").text


def _back_as_citizen(j: Journey, cookies: list[dict], shot: str) -> None:
    """The citizen's browser again: the officer's session dropped, the citizen's cookies put back."""
    j.d.delete_all_cookies()
    j.open("/", shot)
    for cookie in cookies:
        j.d.add_cookie({k: cookie[k] for k in ("name", "value", "path")})


def _decode_qr(driver, element) -> str:
    import zxingcpp
    from PIL import Image

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    image = Image.open(io.BytesIO(element.screenshot_as_png)).convert("L")
    image.save(SHOTS / "receipt-qr.png")
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code could be read from the receipt"
    return found[0].text


def test_citizen_files_and_follows_a_dossier(driver, portal_url, gateway_url, shots, tmp_path):
    j = Journey(driver, portal_url, gateway_url, shots)
    person = new_citizen(gateway_url)

    # 1. find the procedure: search with and without diacritics
    j.open("/", "home")
    j.fill("#q", "khai sinh")
    j.submit("form[role=search] button", "search-results")
    assert "Đăng ký khai sinh" in j.by("ol.results").text
    j.open("/thu-tuc?q=dang+ky+khai+sinh&field=ho_tich&online=full&target=citizen&level=commune",
           "search-filtered")
    assert j.all(f"a[href='/thu-tuc/{PROCEDURE}']")
    j.open("/su-kien", "life-events")
    j.click(element=j.link("Khai sinh cho trẻ"))
    j.check("life-event")
    j.open("/dich-vu-truc-tuyen", "online-services")
    assert len(j.all("main tbody tr")) == 20
    j.open("/thu-tuc?q=Khai+Sinh", "search-case")
    j.click(f"a[href='/thu-tuc/{PROCEDURE}']")
    j.check("procedure")
    assert j.h1() == "Đăng ký khai sinh" and "Căn cứ pháp lý" in j.by("main").text

    # 2. choose the agency for the province and ward
    j.click(element=j.link("Nộp hồ sơ trực tuyến"))
    j.check("choose-province")
    j.select("#tinh", "1")
    j.submit("main form button", "choose-ward")
    assert len(j.all("ul.results > li")) == 30 and "hãy chọn xã, phường" in j.by("main").text
    j.select("#xa", "4")
    j.submit("main form button", "agencies")
    j.click(f"a[href*='co_quan={AGENCY}']")
    assert "/dang-nhap" in driver.current_url  # filing needs an account
    j.check("sign-in-first")
    filing_url = f"/thu-tuc/{PROCEDURE}/nop?co_quan={AGENCY}"
    j.open("/co-quan/H001-UBND", "dissolved-agency")  # a district committee merged away in 2025
    assert j.by("#successor").get_attribute("href").endswith(f"/co-quan/{AGENCY}")

    # 3. register with the mobile subscription, then sign in with CCCD + password + code
    driver.back()
    j.click("main a[href^='/dang-ky']")
    j.check("register")
    j.submit("main form button[type=submit]", "register-errors")
    assert j.by(".error-summary a[href='#f-cccd']").text == "Chưa nhập: Số CCCD."
    j.fill("#f-cccd", person["cccd"])
    j.fill("#f-full_name", person["full_name"])
    driver.execute_script("document.getElementById('f-date_of_birth').value = arguments[0]", person["date_of_birth"])
    j.by("#f-gender" if person["gender"] == "male" else "#f-gender-female").click()
    j.fill("#f-phone", person["phone"])
    j.fill("#f-password", person["password"])
    j.fill("#f-password2", person["password"])
    before = sms_count(gateway_url, person["phone"])
    j.submit("main form button[type=submit]", "register-code")
    j.fill("#f-otp", "000000")
    j.submit("main form button[type=submit]", "register-wrong-code")
    assert "không đúng" in j.by(".error-summary").text
    j.fill("#f-otp", code_after(gateway_url, person["phone"], before))
    j.submit("main form button[type=submit]", "registered")
    assert "Tài khoản đã sẵn sàng" in j.by("main").text
    vneid = requests.post(f"{gateway_url}/api/v1/auth/vneid/start", timeout=30,
                          json={"redirect_uri": f"{portal_url}/dang-nhap/vneid"}).status_code
    assert bool(j.all("a[href^='/dang-nhap/vneid']")) == (vneid != 404)  # offered only when served
    _sign_in(j, person)
    assert driver.current_url.endswith(filing_url)  # back where the citizen was going
    j.check("file-form")
    j.open(f"/thu-tuc/{PROCEDURE}/nop?co_quan=H001-UBND", "file-at-dissolved-agency")
    assert j.by("a.button").get_attribute("href").endswith(filing_url)
    j.open("/tai-khoan", "account")
    assert person["cccd"] in j.by("main").text

    # 4. file with uploads, review, submit twice at once: one dossier
    j.open(filing_url, "file-form-again")
    for path, field in zip(_files(tmp_path), ("#doc-tp1", "#doc-tp2", "#doc-tp3"), strict=True):
        j.by(field).send_keys(str(path))
    j.fill("#f-phone", person["phone"])
    j.submit("main form button[type=submit]", "review")
    assert "giay-to-1.pdf" in j.by("main").text
    form = j.by("form.submit-once")
    action = form.get_attribute("action")
    token = form.find_element("name", "csrf_token").get_attribute("value")
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    answers: list = []

    def post():
        answers.append(requests.post(action, data={"csrf_token": token}, cookies=cookies, allow_redirects=False,
                                     timeout=60))

    racers = [threading.Thread(target=post) for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    j.submit("#submit-dossier", "receipt")  # and the citizen's own click after them
    assert {a.status_code for a in answers} == {303}
    assert len({a.headers["Location"] for a in answers}) == 1
    code = j.by("#dossier-code").text.strip()
    assert answers[0].headers["Location"].endswith(f"/ho-so/{code}/giay-tiep-nhan")

    # 5. the receipt prints without the site's chrome, and its QR code opens the public lookup
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not j.by(".site-header").is_displayed() and not j.by(".no-print").is_displayed()
        assert j.by("#dossier-code").is_displayed() and j.by(".qr svg").is_displayed()
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    printed = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})
    (shots / "receipt.pdf").write_bytes(base64.b64decode(printed["data"]))
    lookup_url = _decode_qr(driver, j.by(".qr"))
    assert lookup_url == f"{portal_url}/tra-cuu?ma={code}"
    driver.get(lookup_url)
    j.check("lookup")
    assert code in j.by("main").text and "Đã nộp, chờ tiếp nhận" in j.by("#lookup-status").text
    j.open("/ho-so", "my-dossiers")
    rows = j.all("main tbody tr")
    assert len(rows) == 1 and code in rows[0].text
    j.open("/ho-so?trang-thai=returned", "my-dossiers-filtered")
    assert not j.all("main tbody tr")

    # 6. the one-stop desk receives it and asks for a supplement
    officer = new_officer(gateway_url, AGENCY)
    citizen_cookies = driver.get_cookies()
    _desk_sign_in(j, officer, check=True)
    j.check("desk-queue")
    j.click(element=j.link(code))
    j.check("desk-dossier")
    j.submit("#act-receive", "desk-received")
    assert "Đã tiếp nhận" in j.by("#dossier-status").text
    j.fill("#request-supplement-missing", "Bản sao giấy chứng sinh có chứng thực")
    j.fill("#request-supplement-reason", "Bản sao chưa được chứng thực")
    j.submit("#act-request-supplement", "desk-supplement-requested")
    assert "Yêu cầu bổ sung" in j.by("#dossier-status").text

    # 7. the citizen sees the request and answers it with an upload
    _back_as_citizen(j, citizen_cookies, "home-again")
    j.open(f"/ho-so/{code}", "dossier-supplement-requested")
    assert "chưa được chứng thực" in j.by("main").text
    extra = tmp_path / "chung-sinh-chung-thuc.pdf"
    extra.write_bytes(PDF)
    j.by("#f-files").send_keys(str(extra))
    j.submit("form[action$='/bo-sung'] button[type=submit]", "dossier-supplemented")
    assert "Đã bổ sung" in j.by("#dossier-status").text

    # 8. the officer records and returns the result
    _desk_sign_in(j, officer, check=False)
    j.open(f"/mot-cua/ho-so/{code}", "desk-dossier-supplemented")
    result = tmp_path / "giay-khai-sinh.pdf"
    result.write_bytes(b"%PDF-1.4\n% Giay khai sinh\n%%EOF\n")
    j.by("#result-files").send_keys(str(result))
    j.submit("#act-result", "desk-result")
    j.submit("#act-return", "desk-returned")
    assert "Đã trả kết quả" in j.by("#dossier-status").text

    # 9. the citizen sees the status and downloads the result; then reads it in English
    _back_as_citizen(j, citizen_cookies, "home-citizen")
    j.open(f"/ho-so/{code}", "dossier-returned")
    assert "Đã trả kết quả" in j.by("#dossier-status").text
    payments = requests.get(f"{gateway_url}/api/v1/dossiers/{code}/payments", timeout=30).status_code
    assert bool(j.all("#payments-title")) == (payments not in (404,))  # the section only when served
    href = j.link("giay-khai-sinh.pdf").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    download = requests.get(href, cookies=cookies, timeout=30)
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    j.click(element=j.link("English"))
    j.check("dossier-english")
    assert driver.find_element("tag name", "html").get_attribute("lang") == "en"
    assert "Result returned" in j.by("#dossier-status").text
    j.click(element=j.link("Tiếng Việt"))
    assert "Đã trả kết quả" in j.by("#dossier-status").text
    assert len(j.checked) >= 30


def test_pages_reflow_at_200_percent_zoom_and_keep_the_skip_link_first(driver, portal_url, gateway_url, shots):
    """At 200 % zoom a 1280-pixel window is 640 CSS pixels wide: nothing may need scrolling
    sideways, and the first Tab stop is the skip link to the main content."""
    from selenium.webdriver.common.keys import Keys

    j = Journey(driver, portal_url, gateway_url, shots)
    j.step = 80
    driver.set_window_size(640, 900)
    try:
        for path, name in (("/", "zoom-home"), ("/thu-tuc?q=khai+sinh", "zoom-search"),
                           (f"/thu-tuc/{PROCEDURE}", "zoom-procedure"), (f"/thu-tuc/{PROCEDURE}/co-quan?tinh=1",
                                                                         "zoom-agencies"),
                           ("/tra-cuu", "zoom-lookup"), ("/dang-nhap", "zoom-sign-in"), ("/dang-ky", "zoom-register")):
            j.open(path, name)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 200 % zoom"
        driver.find_element("tag name", "body").send_keys(Keys.TAB)
        first = driver.switch_to.active_element
        assert first.get_attribute("class") == "skip-link" and first.get_attribute("href").endswith("#main")
    finally:
        driver.set_window_size(1280, 900)
